import { type KeyObject, X509Certificate, generateKeyPairSync, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import {
  MAX_BUNDLE_BYTES,
  MAX_BUNDLE_KEYS,
  type SpiffeBundleDocument,
  buildSpiffeBundle,
  jwtBundleToJson,
  parseSpiffeBundle,
  parseSpiffeBundleText,
  x509AuthoritiesToPem,
} from "./bundle.js";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const TD = "example.org";
const EC = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const RSA = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256", publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };

async function selfSigned(algorithm: typeof EC | typeof RSA, ca = true): Promise<Buffer> {
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: `CN=test ${ca ? "CA" : "leaf"}`,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: algorithm,
    keys,
    extensions: [new x509.BasicConstraintsExtension(ca, undefined, true), new x509.KeyUsagesExtension(ca ? x509.KeyUsageFlags.keyCertSign : x509.KeyUsageFlags.digitalSignature, true)],
  });
  return Buffer.from(cert.rawData);
}

let ecCa: Buffer;
let rsaCa: Buffer;
let leaf: Buffer;
const jwtKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
const jwtKey2 = generateKeyPairSync("ec", { namedCurve: "P-384" });

beforeAll(async () => {
  [ecCa, rsaCa, leaf] = await Promise.all([selfSigned(EC), selfSigned(RSA), selfSigned(EC, false)]);
});

const build = (overrides: Partial<Parameters<typeof buildSpiffeBundle>[0]> = {}): SpiffeBundleDocument =>
  buildSpiffeBundle({ x509Authorities: [ecCa], jwtAuthorities: [{ kid: "k1", publicKey: jwtKey.publicKey }], sequence: 7, refreshHintSeconds: 300, ...overrides });
/** The document as a consumer receives it: plain JSON, not our objects. */
const asJson = (doc: unknown): Record<string, unknown> & { keys: Record<string, unknown>[] } => JSON.parse(JSON.stringify(doc));
const spki = (key: KeyObject) => key.export({ type: "spki", format: "der" });

function expectCode(fn: () => unknown, code: string, message?: string | RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  expect(isMandateError(thrown), `expected a MandateError, got ${String(thrown)}`).toBe(true);
  expect((thrown as { code: string }).code).toBe(code);
  if (message !== undefined) expect((thrown as Error).message).toMatch(message);
}

describe("building the SPIFFE bundle document", () => {
  it("publishes an X.509 authority with use x509-svid, its key parameters, one standard-base64 x5c and no kid (checklist 12)", () => {
    const doc = build({ x509Authorities: [ecCa, rsaCa] });
    const [ec, rsa] = doc.keys;
    expect(ec).toMatchObject({ use: "x509-svid", kty: "EC", crv: "P-256", x: expect.any(String), y: expect.any(String) });
    expect(rsa).toMatchObject({ use: "x509-svid", kty: "RSA", n: expect.any(String), e: "AQAB" });
    for (const [key, der] of [
      [ec!, ecCa],
      [rsa!, rsaCa],
    ] as const) {
      expect(key).not.toHaveProperty("kid");
      expect(key.x5c).toEqual([der.toString("base64")]);
      expect(new X509Certificate(Buffer.from(key.x5c![0]!, "base64")).publicKey.export({ format: "jwk" })).toMatchObject({ kty: key.kty });
    }
  });

  it("publishes a JWT authority with use jwt-svid, kid, kty and only public parameters (checklist 13)", () => {
    const doc = build({ jwtAuthorities: [{ kid: "k1", publicKey: jwtKey.publicKey }, { kid: "k2", publicKey: jwtKey2.privateKey }] });
    const jwtKeys = doc.keys.filter((k) => k.use === "jwt-svid");
    expect(jwtKeys).toEqual([
      { use: "jwt-svid", kid: "k1", ...jwtKey.publicKey.export({ format: "jwk" }) },
      { use: "jwt-svid", kid: "k2", ...jwtKey2.publicKey.export({ format: "jwk" }) },
    ]);
    for (const key of jwtKeys) expect(key).not.toHaveProperty("d");
    expect(doc.spiffe_sequence).toBe(7);
    expect(doc.spiffe_refresh_hint).toBe(300);
  });

  it("refuses input that would publish a wrong bundle", () => {
    expectCode(() => build({ x509Authorities: [leaf] }), "INVALID_ARGUMENT", "not a CA");
    expectCode(() => build({ x509Authorities: [Buffer.from("not a certificate")] }), "INVALID_ARGUMENT", "not a DER certificate");
    expectCode(() => build({ jwtAuthorities: [{ kid: "", publicKey: jwtKey.publicKey }] }), "INVALID_ARGUMENT", "no kid");
    const twice = { kid: "k1", publicKey: jwtKey.publicKey };
    expectCode(() => build({ jwtAuthorities: [twice, twice] }), "INVALID_ARGUMENT", "share kid");
    expectCode(() => build({ jwtAuthorities: [{ kid: "ed", publicKey: generateKeyPairSync("ed25519").publicKey }] }), "INVALID_ARGUMENT", "RSA or P-256");
    expectCode(() => build({ sequence: -1 }), "INVALID_ARGUMENT", "sequence");
    expectCode(() => build({ sequence: 1.5 }), "INVALID_ARGUMENT", "sequence");
    expectCode(() => build({ refreshHintSeconds: 0 }), "INVALID_ARGUMENT", "refresh hint");
  });
});

describe("consuming a SPIFFE bundle", () => {
  it("round-trips through JSON text", () => {
    const doc = build({ x509Authorities: [ecCa, rsaCa], jwtAuthorities: [{ kid: "k1", publicKey: jwtKey.publicKey }, { kid: "k2", publicKey: jwtKey2.publicKey }] });
    const parsed = parseSpiffeBundleText(JSON.stringify(doc), TD);
    expect(parsed.trustDomain).toBe(TD);
    expect(parsed.x509Authorities.map((c) => c.raw)).toEqual([ecCa, rsaCa]);
    expect([...parsed.jwtBundle.keys()]).toEqual(["k1", "k2"]);
    expect(spki(parsed.jwtBundle.get("k1")!.publicKey)).toEqual(spki(jwtKey.publicKey));
    expect(parsed.jwtBundle.get("k2")).toMatchObject({ kid: "k2", kty: "EC", jwk: { crv: "P-384" } });
    expect(parsed.sequence).toBe(7);
    expect(parsed.refreshHintSeconds).toBe(300);
  });

  it("ignores keys with an unknown or missing kty or use (checklist 13)", () => {
    const doc = asJson(build());
    const [x509Key, jwtJwk] = doc.keys as [Record<string, unknown>, Record<string, unknown>];
    const ignored = [
      { kty: "oct", use: "jwt-svid", kid: "symmetric", k: "c2VjcmV0" },
      { ...jwtJwk, kid: "future", kty: "PQC" },
      { ...jwtJwk, kid: "no-kty", kty: undefined },
      { ...jwtJwk, kid: "no-use", use: undefined },
      { ...jwtJwk, kid: "enc", use: "enc" },
      { ...jwtJwk, kid: "case", use: "JWT-SVID" },
      { ...x509Key, use: "X509-SVID" },
      { ...x509Key, use: "x509-svid-v2" },
    ];
    const parsed = parseSpiffeBundle({ ...doc, keys: [...ignored, ...doc.keys] }, TD);
    expect(parsed.x509Authorities.map((c) => c.raw)).toEqual([ecCa]);
    expect([...parsed.jwtBundle.keys()]).toEqual(["k1"]);
  });

  it("uses x5c[0] and ignores x509-svid entries whose x5c is empty or missing (checklist 12)", () => {
    const [x509Key] = asJson(build()).keys as [Record<string, unknown>];
    const parsed = parseSpiffeBundle(
      {
        keys: [
          { ...x509Key, x5c: [] },
          { ...x509Key, x5c: undefined },
          { ...x509Key, x5c: [ecCa.toString("base64"), rsaCa.toString("base64")] },
        ],
      },
      TD,
    );
    expect(parsed.x509Authorities.map((c) => c.raw)).toEqual([ecCa]);
  });

  it("treats keys: [] as a valid bundle that trusts nothing", () => {
    const parsed = parseSpiffeBundle({ keys: [] }, TD);
    expect(parsed.x509Authorities).toEqual([]);
    expect(parsed.jwtBundle.size).toBe(0);
    expect(parsed.sequence).toBeUndefined();
  });

  it("rejects malformed documents with INVALID_BUNDLE and a precise message", () => {
    const doc = asJson(build());
    const [x509Key, jwtJwk] = doc.keys as [Record<string, unknown>, Record<string, unknown>];
    const withKeys = (...keys: unknown[]) => ({ keys });
    const cases: [unknown, RegExp][] = [
      [null, /not a JSON object/],
      [[], /not a JSON object/],
      [{}, /keys array is missing/],
      [{ keys: {} }, /keys array is missing/],
      [withKeys("EC"), /keys\[0\] is not a JSON object/],
      [{ ...doc, spiffe_sequence: -1 }, /spiffe_sequence/],
      [{ ...doc, spiffe_sequence: "7" }, /spiffe_sequence/],
      [{ ...doc, spiffe_refresh_hint: 1.5 }, /spiffe_refresh_hint/],
      [withKeys({ ...x509Key, x5c: ["not base64!"] }), /x5c\[0\] is not standard base64/],
      [withKeys({ ...x509Key, x5c: [ecCa.toString("base64url").replace(/[-_]/g, "") + "-"] }), /not standard base64/],
      [withKeys({ ...x509Key, x5c: [Buffer.from("junk").toString("base64")] }), /not a DER certificate/],
      [withKeys({ ...x509Key, x5c: [Buffer.concat([ecCa, Buffer.from([0])]).toString("base64")] }), /bytes after the certificate|not a DER certificate/],
      [withKeys({ ...x509Key, x5c: [rsaCa.toString("base64")] }), /do not match its x5c certificate/],
      [withKeys({ ...x509Key, x: undefined }), /parameters are not a public key/],
      [withKeys({ ...jwtJwk, kid: undefined }), /keys\[0\]: a jwt-svid key has no kid/],
      [withKeys({ ...jwtJwk, x: "AAAA" }), /not a valid public key/],
      [withKeys(jwtJwk, jwtJwk), /keys\[1\]: kid "k1" appears twice/],
    ];
    for (const [input, message] of cases) expectCode(() => parseSpiffeBundle(input, TD), "INVALID_BUNDLE", message);
    expectCode(() => parseSpiffeBundleText("{", TD), "INVALID_BUNDLE", /not JSON/);
    expectCode(() => parseSpiffeBundle({ keys: [] }, "Example.org"), "INVALID_TRUST_DOMAIN");
  });

  it("caps the number of keys and the document size", () => {
    const many = Array.from({ length: MAX_BUNDLE_KEYS + 1 }, () => ({ kty: "unknown" }));
    expectCode(() => parseSpiffeBundle({ keys: many }, TD), "INVALID_BUNDLE", `at most ${MAX_BUNDLE_KEYS}`);
    expect(parseSpiffeBundle({ keys: many.slice(1) }, TD).jwtBundle.size).toBe(0);
    const huge = JSON.stringify({ keys: [], padding: "x".repeat(MAX_BUNDLE_BYTES) });
    expectCode(() => parseSpiffeBundleText(huge, TD), "INVALID_BUNDLE", /larger than/);
    // Multi-byte characters count as bytes, not as UTF-16 units.
    const wide = JSON.stringify({ keys: [], padding: "é".repeat(MAX_BUNDLE_BYTES / 2) });
    expectCode(() => parseSpiffeBundleText(wide, TD), "INVALID_BUNDLE", /larger than/);
  });

  it("drops private parameters a careless publisher included", () => {
    const privateJwk = jwtKey.privateKey.export({ format: "jwk" });
    const parsed = parseSpiffeBundle({ keys: [{ ...privateJwk, use: "jwt-svid", kid: "k1" }] }, TD);
    expect(parsed.jwtBundle.get("k1")!.publicKey.type).toBe("public");
    expect(jwtBundleToJson(parsed.jwtBundle).keys[0]).not.toHaveProperty("d");
  });
});

describe("agent-side files", () => {
  it("jwtBundleToJson writes only jwt-svid keys, each with kid, kty and use, and reads back", () => {
    const parsed = parseSpiffeBundle(asJson(build({ x509Authorities: [ecCa, rsaCa] })), TD);
    const json = asJson(jwtBundleToJson(parsed.jwtBundle));
    expect(Object.keys(json)).toEqual(["keys"]);
    expect(json.keys).toEqual([{ ...jwtKey.publicKey.export({ format: "jwk" }), kty: "EC", use: "jwt-svid", kid: "k1" }]);
    expect(json.keys.every((k) => !("x5c" in k))).toBe(true);
    const again = parseSpiffeBundle(json, TD);
    expect(again.x509Authorities).toEqual([]);
    expect(spki(again.jwtBundle.get("k1")!.publicKey)).toEqual(spki(jwtKey.publicKey));
  });

  it("x509AuthoritiesToPem writes one PEM block per authority", () => {
    const parsed = parseSpiffeBundle(asJson(build({ x509Authorities: [ecCa, rsaCa] })), TD);
    const pem = x509AuthoritiesToPem(parsed.x509Authorities);
    const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g) ?? [];
    expect(blocks.join("")).toBe(pem);
    expect(blocks.map((block) => new X509Certificate(block).raw)).toEqual([ecCa, rsaCa]);
  });
});

describe("parser robustness (property)", () => {
  const neverCrashes = (value: unknown) => {
    try {
      parseSpiffeBundle(value, TD);
    } catch (error) {
      expect(isMandateError(error, "INVALID_BUNDLE"), String(error)).toBe(true);
    }
  };

  it("random JSON and random values throw only INVALID_BUNDLE", () => {
    fc.assert(fc.property(fc.oneof(fc.jsonValue(), fc.anything()), neverCrashes), { numRuns: 1500 });
    fc.assert(fc.property(fc.string({ maxLength: 200 }), (text) => {
      try {
        parseSpiffeBundleText(text, TD);
      } catch (error) {
        expect(isMandateError(error, "INVALID_BUNDLE"), String(error)).toBe(true);
      }
    }), { numRuns: 500 });
  });

  it("random key entries throw only INVALID_BUNDLE", () => {
    const entry = fc.record(
      {
        kty: fc.constantFrom("EC", "RSA", "OKP", "oct", "x"),
        use: fc.constantFrom("jwt-svid", "x509-svid", "enc"),
        kid: fc.oneof(fc.string(), fc.integer()),
        x5c: fc.array(fc.oneof(fc.base64String(), fc.string(), fc.constant("")), { maxLength: 2 }),
        crv: fc.constantFrom("P-256", "P-384", "Ed25519", "X25519", "secp256k1", ""),
        x: fc.oneof(fc.base64String(), fc.string()),
        y: fc.base64String(),
        n: fc.base64String(),
        e: fc.constantFrom("AQAB", "", "AA"),
      },
      { requiredKeys: [] },
    );
    fc.assert(fc.property(fc.array(entry, { maxLength: 5 }), (keys) => neverCrashes({ keys })), { numRuns: 1500 });
  });

  it("a valid document with one field replaced by random JSON throws only INVALID_BUNDLE", () => {
    const doc = asJson(build({ x509Authorities: [ecCa, rsaCa] }));
    const fields = doc.keys.flatMap((key, index) => Object.keys(key).map((name) => [index, name] as const));
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.jsonValue(), ([index, name], value) => {
        const mutated = asJson(doc);
        mutated.keys[index]![name] = value;
        neverCrashes(mutated);
      }),
      { numRuns: 1000 },
    );
  });
});
