import { type KeyObject, createHmac, generateKeyPairSync, sign } from "node:crypto";
import fc from "fast-check";
import * as jose from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import { type JwtBundle, buildSpiffeBundle, parseSpiffeBundle } from "./bundle.js";
import { createJwtSvidSigner, verifyJwtSvid } from "./jwt-svid.js";

const ID = "spiffe://example.org/agent/a";
let key: { privateKey: KeyObject; publicKey: KeyObject };
let other: { privateKey: KeyObject; publicKey: KeyObject };
let bundles: Map<string, JwtBundle>;
const signer = () => createJwtSvidSigner({ kid: "k1", privateKey: key.privateKey });
const options = (overrides: Partial<Parameters<typeof verifyJwtSvid>[1]> = {}) => ({ audience: "svc", jwtBundleFor: (td: string) => bundles.get(td), ...overrides });

beforeAll(() => {
  key = generateKeyPairSync("ec", { namedCurve: "P-256" });
  other = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const bundleOf = (td: string, kid: string, publicKey: KeyObject) =>
    parseSpiffeBundle(buildSpiffeBundle({ x509Authorities: [], jwtAuthorities: [{ kid, publicKey }], sequence: 1, refreshHintSeconds: 60 }), td).jwtBundle;
  bundles = new Map([
    ["example.org", bundleOf("example.org", "k1", key.publicKey)],
    ["other.org", bundleOf("other.org", "k2", other.publicKey)],
  ]);
});

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
/** Hand-built tokens, to exercise exactly one deviation each. */
function craft(header: Record<string, unknown>, payload: Record<string, unknown>, signWith: KeyObject = key.privateKey): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign("sha256", Buffer.from(input), { key: signWith, dsaEncoding: "ieee-p1363" }).toString("base64url")}`;
}
const now = () => Math.floor(Date.now() / 1000);
const goodPayload = () => ({ sub: ID, aud: ["svc"], exp: now() + 300, iat: now() });

describe("JWT-SVID minting", () => {
  it("produces compact ES256 tokens with exactly alg, kid and typ, verifiable by plain jose", async () => {
    const token = await signer().mintJwtSvid({ spiffeId: ID, audience: ["svc", "other"], ttlSeconds: 300 });
    const header = jose.decodeProtectedHeader(token);
    expect(header).toEqual({ alg: "ES256", kid: "k1", typ: "JWT" });
    const jwks = jose.createLocalJWKSet({ keys: [{ ...(key.publicKey.export({ format: "jwk" }) as jose.JWK), kid: "k1" }] });
    const { payload } = await jose.jwtVerify(token, jwks, { audience: "svc", algorithms: ["ES256"] });
    expect(payload.sub).toBe(ID);
    expect(payload.exp! - payload.iat!).toBe(300);
    const ours = await verifyJwtSvid(token, options());
    expect(ours.spiffeId.uri).toBe(ID);
  });

  it("rejects an empty audience and keeps protected claims", async () => {
    await expect(signer().mintJwtSvid({ spiffeId: ID, audience: [], ttlSeconds: 60 })).rejects.toThrow("audience");
    const token = await signer().mintJwtSvid({ spiffeId: ID, audience: ["svc"], ttlSeconds: 60, claims: { sub: "spiffe://evil/x", team: "sre" } });
    expect(jose.decodeJwt(token)).toMatchObject({ sub: ID, team: "sre" });
  });
});

describe("JWT-SVID verification (SPIFFE JWT-SVID §3–4)", () => {
  const rejects = async (token: string, code: string, message?: string, extra = {}) => {
    const error = await verifyJwtSvid(token, options(extra)).catch((e: unknown) => e);
    expect(isMandateError(error), String(error)).toBe(true);
    expect((error as { code: string }).code).toBe(code);
    if (message) expect((error as Error).message).toContain(message);
  };

  it("rejects alg none, HS256 with the public key as secret, EdDSA and an alg that does not fit the key", async () => {
    await rejects(`${b64({ alg: "none", typ: "JWT" })}.${b64(goodPayload())}.`, "INVALID_JWT");
    await rejects(`${b64({ alg: "none" })}.${b64(goodPayload())}.AA`, "INVALID_JWT", "not allowed");
    const input = `${b64({ alg: "HS256", kid: "k1" })}.${b64(goodPayload())}`;
    const hmac = createHmac("sha256", key.publicKey.export({ type: "spki", format: "pem" })).update(input).digest("base64url");
    await rejects(`${input}.${hmac}`, "INVALID_JWT", "not allowed");
    const ed = generateKeyPairSync("ed25519");
    const edInput = `${b64({ alg: "EdDSA", kid: "k1" })}.${b64(goodPayload())}`;
    await rejects(`${edInput}.${sign(null, Buffer.from(edInput), ed.privateKey).toString("base64url")}`, "INVALID_JWT", "not allowed");
    await rejects(craft({ alg: "RS256", kid: "k1" }, goodPayload()), "INVALID_JWT");
  });

  it("requires aud, the right audience, exp, and rejects expired or not-yet-valid tokens", async () => {
    const { aud: _aud, ...noAud } = goodPayload();
    await rejects(craft({ alg: "ES256", kid: "k1" }, noAud), "JWT_AUDIENCE_MISMATCH", "missing");
    await rejects(craft({ alg: "ES256", kid: "k1" }, { ...goodPayload(), aud: ["elsewhere"] }), "JWT_AUDIENCE_MISMATCH");
    const { exp: _exp, ...noExp } = goodPayload();
    await rejects(craft({ alg: "ES256", kid: "k1" }, noExp), "INVALID_JWT", "exp");
    await rejects(craft({ alg: "ES256", kid: "k1" }, { ...goodPayload(), exp: now() - 120 }), "JWT_EXPIRED");
    await rejects(craft({ alg: "ES256", kid: "k1" }, { ...goodPayload(), nbf: now() + 600 }), "INVALID_JWT", "nbf");
  });

  it("rejects a token from an issuer whose clock runs 10 minutes ahead", async () => {
    const ahead = now() + 600;
    await rejects(craft({ alg: "ES256", kid: "k1" }, { ...goodPayload(), iat: ahead, exp: ahead + 300 }), "INVALID_JWT", "future");
  });

  it("checks typ and crit, and accepts only the compact serialization", async () => {
    await rejects(craft({ alg: "ES256", kid: "k1", typ: "at+jwt" }, goodPayload()), "INVALID_JWT", "typ");
    await rejects(craft({ alg: "ES256", kid: "k1", crit: ["exp"] }, goodPayload()), "INVALID_JWT", "critical");
    const token = craft({ alg: "ES256", kid: "k1" }, goodPayload());
    const [h, p, s] = token.split(".");
    await rejects(JSON.stringify({ protected: h, payload: p, signature: s }), "INVALID_JWT", "compact");
  });

  it("looks keys up only in the bundle of sub's trust domain", async () => {
    // Signed by other.org's key, but claiming a sub in example.org.
    await rejects(craft({ alg: "ES256", kid: "k2" }, goodPayload(), other.privateKey), "INVALID_JWT", "not in the bundle of trust domain example.org");
    await rejects(craft({ alg: "ES256" }, goodPayload(), other.privateKey), "INVALID_JWT", "signature");
    await rejects(craft({ alg: "ES256", kid: "k1" }, { ...goodPayload(), sub: "https://example.org/a" }), "INVALID_JWT", "SPIFFE ID");
    await rejects(craft({ alg: "ES256", kid: "k1" }, { ...goodPayload(), sub: "spiffe://nowhere.org/a" }), "INVALID_JWT", "no JWT bundle");
    await rejects(craft({ alg: "ES256", kid: "unknown" }, goodPayload()), "INVALID_JWT", "unknown");
  });

  it("accepts a missing typ, a missing kid and aud as a string", async () => {
    await expect(verifyJwtSvid(craft({ alg: "ES256" }, { ...goodPayload(), aud: "svc" }), options())).resolves.toMatchObject({ spiffeId: { uri: ID } });
    await expect(verifyJwtSvid(craft({ alg: "ES256", typ: "JOSE", kid: "k1" }, goodPayload()), options())).resolves.toBeTruthy();
  });

  it("never verifies a mutated token and never throws a non-MandateError (property)", async () => {
    const token = await signer().mintJwtSvid({ spiffeId: ID, audience: ["svc"], ttlSeconds: 300 });
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string({ maxLength: 300 }),
          fc.tuple(fc.nat(token.length - 1), fc.constantFrom(..."ABCabc012-_.".split(""))).map(([i, c]) => token.slice(0, i) + c + token.slice(i + 1)),
        ),
        async (candidate) => {
          try {
            await verifyJwtSvid(candidate, options());
            // Base64url has slack bits in the last character: only a token with the same bytes may pass.
            expect(Buffer.from(candidate.split(".")[2]!, "base64url").equals(Buffer.from(token.split(".")[2]!, "base64url"))).toBe(true);
          } catch (error) {
            expect(isMandateError(error)).toBe(true);
          }
        },
      ),
      { numRuns: 1500 },
    );
  });
});
