import { type KeyObject, createHmac, generateKeyPairSync, sign } from "node:crypto";
import fc from "fast-check";
import * as jose from "jose";
import { describe, expect, it, vi } from "vitest";
import { isMandateError } from "../errors/index.js";
import { type JwtBundle, buildSpiffeBundle, parseSpiffeBundleText } from "./bundle.js";
import { DEFAULT_CLOCK_TOLERANCE_SECONDS, type VerifyJwtSvidOptions, createJwtSvidSigner, verifyJwtSvid } from "./jwt-svid.js";

const TD = "example.org";
const ID = `spiffe://${TD}/agent/deploy-auditor`;
const AUD = "mcp-proxy";

const k1 = generateKeyPairSync("ec", { namedCurve: "P-256" });
const k2 = generateKeyPairSync("ec", { namedCurve: "P-256" });
const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" });
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
/** other.org reuses the kid "k1" for a different key: kids are only unique within one trust domain. */
const otherK1 = generateKeyPairSync("ec", { namedCurve: "P-256" });
const otherOnly = generateKeyPairSync("ec", { namedCurve: "P-256" });

/** What the control plane serves, as a consumer receives it: JSON text. */
const servedText = JSON.stringify(
  buildSpiffeBundle({
    x509Authorities: [],
    jwtAuthorities: [
      { kid: "k1", publicKey: k1.publicKey },
      { kid: "k2", publicKey: k2.publicKey },
      { kid: "e384", publicKey: p384.publicKey },
      { kid: "r1", publicKey: rsa.publicKey },
    ],
    sequence: 1,
    refreshHintSeconds: 300,
  }),
);
const otherText = JSON.stringify(
  buildSpiffeBundle({
    x509Authorities: [],
    jwtAuthorities: [
      { kid: "k1", publicKey: otherK1.publicKey },
      { kid: "o2", publicKey: otherOnly.publicKey },
    ],
    sequence: 1,
    refreshHintSeconds: 300,
  }),
);
const bundles = new Map<string, JwtBundle>([
  [TD, parseSpiffeBundleText(servedText, TD).jwtBundle],
  ["other.org", parseSpiffeBundleText(otherText, "other.org").jwtBundle],
]);
const options = (overrides: Partial<VerifyJwtSvidOptions> = {}): VerifyJwtSvidOptions => ({ audience: AUD, jwtBundleFor: (td) => bundles.get(td), ...overrides });
const signer = createJwtSvidSigner({ kid: "k1", privateKey: k1.privateKey });
const mint = (overrides: Partial<Parameters<typeof signer.mintJwtSvid>[0]> = {}) => signer.mintJwtSvid({ spiffeId: ID, audience: [AUD], ttlSeconds: 300, ...overrides });

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const nowSeconds = () => Math.floor(Date.now() / 1000);
const goodPayload = (): Record<string, unknown> => ({ sub: ID, aud: [AUD], exp: nowSeconds() + 300, iat: nowSeconds() });

/** Hand-built tokens, so each test deviates in exactly one way. */
function craft(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject = k1.privateKey): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const alg = String(header.alg);
  const hash = `sha${alg.slice(2)}`;
  const signature = alg.startsWith("PS")
    ? sign(hash, Buffer.from(input), { key, padding: 6 /* RSA_PKCS1_PSS_PADDING */, saltLength: Number(alg.slice(2)) / 8 })
    : sign(alg.startsWith("ES") || alg.startsWith("RS") ? hash : null, Buffer.from(input), { key, dsaEncoding: "ieee-p1363" });
  return `${input}.${signature.toString("base64url")}`;
}
const es256 = (payload = goodPayload(), header: Record<string, unknown> = { alg: "ES256", kid: "k1", typ: "JWT" }, key = k1.privateKey) => craft(header, payload, key);

async function rejects(token: string, code: string, message?: string | RegExp, overrides: Partial<VerifyJwtSvidOptions> = {}): Promise<void> {
  const error = await verifyJwtSvid(token, options(overrides)).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, "token was accepted").toBeDefined();
  expect(isMandateError(error), String(error)).toBe(true);
  expect((error as { code: string }).code, (error as Error).message).toBe(code);
  if (message !== undefined) expect((error as Error).message).toMatch(message);
}

describe("minting JWT-SVIDs (checklist 15)", () => {
  it("emits a compact token whose header is exactly alg ES256, kid and typ JWT", async () => {
    const token = await mint();
    expect(token.split(".")).toHaveLength(3);
    expect(JSON.parse(Buffer.from(token.split(".")[0]!, "base64url").toString())).toEqual({ alg: "ES256", kid: "k1", typ: "JWT" });
  });

  it("sets sub, a non-empty aud array, exp, iat and a unique jti", async () => {
    const now = new Date("2030-01-01T00:00:10.900Z");
    const claims = jose.decodeJwt(await mint({ audience: [AUD, "other"], ttlSeconds: 120, now }));
    expect(claims).toEqual({ sub: ID, aud: [AUD, "other"], iat: now.getTime() / 1000 - 0.9, exp: now.getTime() / 1000 - 0.9 + 120, jti: expect.any(String) });
    const jtis = new Set(await Promise.all(Array.from({ length: 50 }, async () => jose.decodeJwt(await mint()).jti)));
    expect(jtis.size).toBe(50);
  });

  it("is verified by an independent peer: plain jose with a local JWKS made from the served bundle", async () => {
    const served = JSON.parse(servedText) as { keys: Record<string, unknown>[] };
    // jose skips keys whose use is not "sig", so an ordinary JWT consumer strips the SPIFFE use first.
    const jwks = jose.createLocalJWKSet({ keys: served.keys.filter((k) => k.use === "jwt-svid").map(({ use: _use, ...k }) => k as jose.JWK) });
    const { payload, protectedHeader } = await jose.jwtVerify(await mint(), jwks, { audience: AUD, algorithms: ["ES256"], requiredClaims: ["exp", "sub", "aud"] });
    expect(payload.sub).toBe(ID);
    expect(protectedHeader.kid).toBe("k1");
  });

  it("keeps sub, aud, exp, iat and jti when extra claims try to override them", async () => {
    const evil = JSON.parse('{"sub":"spiffe://evil.org/x","aud":["*"],"exp":9999999999,"iat":0,"jti":"fixed","team":"sre","__proto__":{"admin":true}}');
    const token = await mint({ claims: evil, now: new Date(1_900_000_000_000) });
    const claims = jose.decodeJwt(token) as Record<string, unknown>;
    expect(claims).toMatchObject({ sub: ID, aud: [AUD], exp: 1_900_000_300, iat: 1_900_000_000, team: "sre" });
    expect(claims.jti).not.toBe("fixed");
    expect(Object.hasOwn(claims, "__proto__")).toBe(true);
  });

  it("rejects an empty audience, a non-positive lifetime, a bad SPIFFE ID and a wrong key", async () => {
    const invalidArgument = async (promise: Promise<unknown>, message: RegExp) => {
      const error = await promise.then(() => undefined, (e: unknown) => e);
      expect(isMandateError(error, "INVALID_ARGUMENT"), String(error)).toBe(true);
      expect((error as Error).message).toMatch(message);
    };
    await invalidArgument(mint({ audience: [] }), /at least one audience/);
    await invalidArgument(mint({ audience: [""] }), /non-empty string/);
    for (const ttlSeconds of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) await invalidArgument(mint({ ttlSeconds }), /lifetime/);
    await invalidArgument(mint({ now: new Date(Number.NaN) }), /issuance time/);
    await expect(mint({ spiffeId: "spiffe://example.org/a/../b" })).rejects.toMatchObject({ code: "INVALID_SPIFFE_ID" });
    expect(() => createJwtSvidSigner({ kid: "x", privateKey: p384.privateKey })).toThrow(/P-256/);
    expect(() => createJwtSvidSigner({ kid: "x", privateKey: rsa.privateKey })).toThrow(/P-256/);
    expect(() => createJwtSvidSigner({ kid: "x", privateKey: k1.publicKey })).toThrow(/P-256/);
    expect(() => createJwtSvidSigner({ kid: "", privateKey: k1.privateKey })).toThrow(/kid/);
  });
});

describe("verifying JWT-SVIDs (checklist 16)", () => {
  it("accepts a minted token and reports the identity, claims, key and expiry", async () => {
    const now = new Date();
    const result = await verifyJwtSvid(await mint({ now, ttlSeconds: 60 }), options());
    expect(result.spiffeId).toEqual({ trustDomain: TD, path: "/agent/deploy-auditor", uri: ID });
    expect(result.kid).toBe("k1");
    expect(result.claims).toMatchObject({ sub: ID, aud: [AUD] });
    expect(result.expiresAt.getTime()).toBe((Math.floor(now.getTime() / 1000) + 60) * 1000);
  });

  it("accepts every allowed algorithm family from an independent producer when the key fits", async () => {
    const produce = (alg: string, kid: string, key: KeyObject) =>
      new jose.SignJWT({ aud: AUD }).setProtectedHeader({ alg, kid }).setSubject(ID).setIssuedAt().setExpirationTime("5m").sign(key);
    for (const [alg, kid, key] of [
      ["ES256", "k2", k2.privateKey],
      ["ES384", "e384", p384.privateKey],
      ["RS256", "r1", rsa.privateKey],
      ["RS512", "r1", rsa.privateKey],
      ["PS256", "r1", rsa.privateKey],
      ["PS384", "r1", rsa.privateKey],
    ] as const) {
      await expect(verifyJwtSvid(await produce(alg, kid, key), options()), alg).resolves.toMatchObject({ kid });
    }
  });

  it("rejects alg none", async () => {
    await rejects(`${b64({ alg: "none", typ: "JWT" })}.${b64(goodPayload())}.`, "INVALID_JWT", /compact/);
    await rejects(`${b64({ alg: "none", typ: "JWT" })}.${b64(goodPayload())}.AA`, "INVALID_JWT", /algorithm "none" is not allowed/);
  });

  it("rejects HS256 signed with the bundle's public key as the HMAC secret (key confusion)", async () => {
    const input = `${b64({ alg: "HS256", kid: "k1", typ: "JWT" })}.${b64(goodPayload())}`;
    for (const secret of [k1.publicKey.export({ type: "spki", format: "pem" }), k1.publicKey.export({ type: "spki", format: "der" }), JSON.stringify(k1.publicKey.export({ format: "jwk" }))]) {
      await rejects(`${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`, "INVALID_JWT", /algorithm "HS256" is not allowed/);
    }
  });

  it("rejects EdDSA", async () => {
    const ed = generateKeyPairSync("ed25519");
    await rejects(craft({ alg: "EdDSA", kid: "k1" }, goodPayload(), ed.privateKey), "INVALID_JWT", /algorithm "EdDSA" is not allowed/);
  });

  it("rejects an algorithm that does not fit the key", async () => {
    await rejects(craft({ alg: "RS256", kid: "k1" }, goodPayload(), rsa.privateKey), "INVALID_JWT", 'kid "k1" is an EC P-256 key and cannot verify RS256');
    await rejects(craft({ alg: "ES384", kid: "k1" }, goodPayload(), p384.privateKey), "INVALID_JWT", /cannot verify ES384/);
    await rejects(craft({ alg: "ES256", kid: "r1" }, goodPayload()), "INVALID_JWT", 'kid "r1" is an RSA key and cannot verify ES256');
    await rejects(craft({ alg: "ES512" }, goodPayload(), generateKeyPairSync("ec", { namedCurve: "P-521" }).privateKey), "INVALID_JWT", /no key in the bundle of trust domain example.org can verify ES512/);
  });

  it("rejects a missing aud, an empty aud and a wrong audience", async () => {
    const { aud: _aud, ...noAud } = goodPayload();
    await rejects(es256(noAud), "JWT_AUDIENCE_MISMATCH", /aud is missing/);
    await rejects(es256({ ...goodPayload(), aud: [] }), "JWT_AUDIENCE_MISMATCH");
    await rejects(es256({ ...goodPayload(), aud: ["billing"] }), "JWT_AUDIENCE_MISMATCH", /\["billing"\] does not contain/);
    await rejects(await mint(), "JWT_AUDIENCE_MISMATCH", undefined, { audience: "billing" });
  });

  it("rejects a missing, malformed or expired exp", async () => {
    const { exp: _exp, ...noExp } = goodPayload();
    await rejects(es256(noExp), "INVALID_JWT", /exp is missing/);
    await rejects(es256({ ...goodPayload(), exp: String(nowSeconds() + 300) }), "INVALID_JWT", /exp is invalid/);
    const exp = nowSeconds() - DEFAULT_CLOCK_TOLERANCE_SECONDS - 5;
    await rejects(es256({ ...goodPayload(), exp }), "JWT_EXPIRED", `JWT-SVID expired at ${new Date(exp * 1000).toISOString()}`);
    // Within the clock tolerance a just-expired token still passes, unless the validator sets none.
    const justExpired = es256({ ...goodPayload(), exp: nowSeconds() - 5 });
    await expect(verifyJwtSvid(justExpired, options())).resolves.toBeTruthy();
    await rejects(justExpired, "JWT_EXPIRED", undefined, { clockToleranceSeconds: 0 });
    await rejects(await mint({ ttlSeconds: 60 }), "JWT_EXPIRED", undefined, { now: new Date(Date.now() + 3600_000) });
  });

  it("rejects a future nbf and a future iat", async () => {
    const nbf = nowSeconds() + 600;
    await rejects(es256({ ...goodPayload(), nbf, exp: nbf + 300 }), "INVALID_JWT", `not valid before ${new Date(nbf * 1000).toISOString()}`);
    await rejects(es256({ ...goodPayload(), iat: nbf, exp: nbf + 300 }), "INVALID_JWT", /issued in the future/);
  });

  it("rejects a typ other than JWT or JOSE", async () => {
    await rejects(es256(goodPayload(), { alg: "ES256", kid: "k1", typ: "at+jwt" }), "INVALID_JWT", /typ "at\+jwt" is neither JWT nor JOSE/);
    await rejects(es256(goodPayload(), { alg: "ES256", kid: "k1", typ: 1 }), "INVALID_JWT", /typ/);
  });

  it("rejects an unknown crit and any header parameter beyond alg, kid and typ", async () => {
    await rejects(es256(goodPayload(), { alg: "ES256", kid: "k1", crit: ["urn:example:x"], "urn:example:x": true }), "INVALID_JWT", /critical header extensions/);
    for (const extra of [{ jku: "https://evil.example/jwks" }, { jwk: k1.publicKey.export({ format: "jwk" }) }, { x5u: "https://evil.example/x" }, { b64: false }]) {
      await rejects(es256(goodPayload(), { alg: "ES256", kid: "k1", ...extra }), "INVALID_JWT", /is not allowed \(only alg, kid and typ\)/);
    }
  });

  it("rejects the JSON serializations", async () => {
    const [protectedHeader, payload, signature] = es256().split(".");
    await rejects(JSON.stringify({ protected: protectedHeader, payload, signature }), "INVALID_JWT", /compact/);
    await rejects(JSON.stringify({ payload, signatures: [{ protected: protectedHeader, signature }] }), "INVALID_JWT", /compact/);
  });

  it("takes keys only from the bundle of sub's trust domain", async () => {
    // The signer's kid exists only in other.org's bundle.
    await rejects(es256(goodPayload(), { alg: "ES256", kid: "o2" }, otherOnly.privateKey), "INVALID_JWT", 'kid "o2" is not in the bundle of trust domain example.org');
    // Same kid in both bundles: other.org's key must not vouch for an example.org sub.
    await rejects(es256(goodPayload(), { alg: "ES256", kid: "k1" }, otherK1.privateKey), "INVALID_JWT", /signature does not verify with the bundle of trust domain example.org/);
    await rejects(es256(goodPayload(), { alg: "ES256" }, otherK1.privateKey), "INVALID_JWT", /signature does not verify/);
    await rejects(es256(), "INVALID_JWT", /no JWT bundle for trust domain example.org/, { jwtBundleFor: (td) => (td === "other.org" ? bundles.get(td) : undefined) });
    const jwtBundleFor = vi.fn((td: string) => bundles.get(td));
    await verifyJwtSvid(await mint(), options({ jwtBundleFor }));
    expect(jwtBundleFor.mock.calls).toEqual([[TD]]);
    // And the same token shape is fine for other.org's own subjects.
    await expect(verifyJwtSvid(es256({ ...goodPayload(), sub: "spiffe://other.org/w" }, { alg: "ES256", kid: "o2" }, otherOnly.privateKey), options())).resolves.toMatchObject({ kid: "o2" });
  });

  it("rejects a sub that is missing or not a SPIFFE ID", async () => {
    const { sub: _sub, ...noSub } = goodPayload();
    await rejects(es256(noSub), "INVALID_JWT", /sub is missing/);
    for (const sub of ["https://example.org/agent/a", "spiffe://example.org/a/../b", "spiffe://EXAMPLE.org/a", 42]) {
      await rejects(es256({ ...goodPayload(), sub }), "INVALID_JWT", /sub is (not a SPIFFE ID|missing or not a string)/);
    }
  });

  it("rejects an unknown kid", async () => {
    await rejects(es256(goodPayload(), { alg: "ES256", kid: "retired" }), "INVALID_JWT", 'kid "retired" is not in the bundle of trust domain example.org');
  });

  it("accepts a missing typ, typ JOSE, a missing kid and aud as a string", async () => {
    await expect(verifyJwtSvid(es256(goodPayload(), { alg: "ES256", kid: "k1" }), options())).resolves.toBeTruthy();
    await expect(verifyJwtSvid(es256(goodPayload(), { alg: "ES256", kid: "k1", typ: "JOSE" }), options())).resolves.toBeTruthy();
    // Without a kid every fitting key is tried; k2 is the second EC P-256 key.
    await expect(verifyJwtSvid(es256(goodPayload(), { alg: "ES256" }, k2.privateKey), options())).resolves.toMatchObject({ kid: "k2" });
    await expect(verifyJwtSvid(es256({ ...goodPayload(), aud: AUD }), options())).resolves.toMatchObject({ claims: { aud: AUD } });
  });

  it("rejects garbage with INVALID_JWT and bad options with INVALID_ARGUMENT", async () => {
    await rejects("", "INVALID_JWT", /empty/);
    await rejects("a.b", "INVALID_JWT", /compact/);
    await rejects(`${"A".repeat(20_000)}.e30.AA`, "INVALID_JWT", /longer than/);
    await rejects(`${Buffer.from("{not json").toString("base64url")}.e30.AA`, "INVALID_JWT", /header is not base64url-encoded JSON/);
    await rejects(`${b64([1])}.e30.AA`, "INVALID_JWT", /header is not a JSON object/);
    await rejects(`${b64({ alg: "ES256" })}.${b64("sub")}.AA`, "INVALID_JWT", /payload is not a JSON object/);
    const token = await mint();
    for (const bad of [{ audience: "" }, { clockToleranceSeconds: -1 }, { clockToleranceSeconds: 3600 }, { now: new Date(Number.NaN) }]) {
      await expect(verifyJwtSvid(token, options(bad))).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
    }
  });
});

describe("verifier robustness (property)", () => {
  const onlyMandateErrors = async (candidate: string): Promise<boolean> => {
    try {
      await verifyJwtSvid(candidate, options());
      return true;
    } catch (error) {
      expect(isMandateError(error), String(error)).toBe(true);
      return false;
    }
  };

  it("random strings are rejected with a MandateError", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string({ maxLength: 300 }), fc.string({ unit: "binary", maxLength: 100 }), fc.array(fc.base64String(), { minLength: 3, maxLength: 3 }).map((s) => s.join("."))), async (candidate) => {
        expect(await onlyMandateErrors(candidate)).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });

  it("a token with one character changed never verifies unless it decodes to the same bytes", async () => {
    const token = await mint();
    const [h, p, s] = token.split(".") as [string, string, string];
    await fc.assert(
      fc.asyncProperty(fc.nat(token.length - 1), fc.constantFrom(..."ABCDabcd0189-_.=+/ ".split("")), async (index, char) => {
        const candidate = token.slice(0, index) + char + token.slice(index + 1);
        if (await onlyMandateErrors(candidate)) {
          // Base64url's last character carries slack bits, so only the signature may differ in text, never in bytes.
          const [h2, p2, s2] = candidate.split(".") as [string, string, string];
          expect([h2, p2]).toEqual([h, p]);
          expect(Buffer.from(s2, "base64url")).toEqual(Buffer.from(s, "base64url"));
        }
      }),
      { numRuns: 1000 },
    );
  });

  it("a changed claim or a changed signature bit never verifies", async () => {
    const token = await mint({ audience: [AUD, "other"] });
    const [h, p, s] = token.split(".") as [string, string, string];
    const claims = jose.decodeJwt(token);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom("sub", "aud", "exp", "iat", "jti", "extra"), fc.jsonValue(), async (name, value) => {
        fc.pre(JSON.stringify(claims[name]) !== JSON.stringify(value));
        expect(await onlyMandateErrors(`${h}.${b64({ ...claims, [name]: value })}.${s}`)).toBe(false);
      }),
      { numRuns: 500 },
    );
    const signature = Buffer.from(s, "base64url");
    await fc.assert(
      fc.asyncProperty(fc.nat(signature.length * 8 - 1), async (bit) => {
        const flipped = Buffer.from(signature);
        flipped[bit >> 3]! ^= 1 << (bit & 7);
        expect(await onlyMandateErrors(`${h}.${p}.${flipped.toString("base64url")}`)).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("validly signed tokens with random headers and claims throw only MandateErrors", async () => {
    const header = fc.record(
      { alg: fc.constantFrom("ES256", "ES384", "RS256", "HS256", "none", 1), kid: fc.constantFrom("k1", "k2", "r1", "", 7), typ: fc.constantFrom("JWT", "JOSE", "jwt", null), crit: fc.jsonValue() },
      { requiredKeys: [] },
    );
    const payload = fc.record(
      {
        sub: fc.oneof(fc.constant(ID), fc.constant("spiffe://other.org/w"), fc.string(), fc.jsonValue()),
        aud: fc.oneof(fc.constant(AUD), fc.constant([AUD]), fc.jsonValue()),
        exp: fc.oneof(fc.constant(nowSeconds() + 300), fc.integer(), fc.double(), fc.jsonValue()),
        nbf: fc.oneof(fc.integer(), fc.jsonValue()),
        iat: fc.oneof(fc.constant(nowSeconds()), fc.double(), fc.jsonValue()),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(header, payload, async (h, p) => {
        await onlyMandateErrors(craft(h, p));
      }),
      { numRuns: 1000 },
    );
  });
});

describe("timestamps no date can hold", () => {
  it("are rejected with a MandateError, never a RangeError", async () => {
    for (const payload of [
      { ...goodPayload(), exp: 1e20 },
      { ...goodPayload(), iat: 1e20 },
      { ...goodPayload(), exp: -1e20 },
      { ...goodPayload(), nbf: 1e20 },
    ]) {
      const error = await verifyJwtSvid(es256(payload), options()).catch((e: unknown) => e);
      expect(isMandateError(error), String(error)).toBe(true);
    }
  });
});
