import { X509Certificate, generateKeyPairSync } from "node:crypto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import { generateRootAuthority } from "./authority-keys.js";
import { buildSpiffeBundle, jwtBundleToJson, parseSpiffeBundle, parseSpiffeBundleText } from "./bundle.js";

let caDer: Buffer;
const jwtKey = generateKeyPairSync("ec", { namedCurve: "P-256" });
beforeAll(async () => {
  caDer = (await generateRootAuthority("example.org", new Date(Date.now() - 1000), new Date(Date.now() + 86400_000))).certDer;
});

describe("SPIFFE bundle format", () => {
  it("writes x509-svid keys with one x5c and no kid, jwt-svid keys with a kid, sequence and refresh hint", () => {
    const doc = buildSpiffeBundle({ x509Authorities: [caDer], jwtAuthorities: [{ kid: "k1", publicKey: jwtKey.publicKey }], sequence: 7, refreshHintSeconds: 300 });
    expect(doc.spiffe_sequence).toBe(7);
    expect(doc.spiffe_refresh_hint).toBe(300);
    const [x, j] = doc.keys as Record<string, unknown>[];
    expect(x).toMatchObject({ use: "x509-svid", kty: "EC", crv: "P-256" });
    expect(x).not.toHaveProperty("kid");
    expect(x!.x5c).toHaveLength(1);
    expect(new X509Certificate(Buffer.from((x!.x5c as string[])[0]!, "base64")).raw.equals(caDer)).toBe(true);
    expect(j).toMatchObject({ use: "jwt-svid", kid: "k1", kty: "EC" });
    expect(j).not.toHaveProperty("d");
  });

  it("round-trips, and skips what a consumer must skip", () => {
    const doc = buildSpiffeBundle({ x509Authorities: [caDer], jwtAuthorities: [{ kid: "k1", publicKey: jwtKey.publicKey }], sequence: 2, refreshHintSeconds: 60 });
    const extra = [
      { kty: "oct", use: "jwt-svid", kid: "sym", k: "AAAA" },
      { ...(doc.keys[1] as object), kid: "nouse", use: undefined },
      { ...(doc.keys[1] as object), kid: "weird", use: "enc" },
      { ...(doc.keys[0] as object), x5c: [] },
    ];
    const parsed = parseSpiffeBundle({ ...doc, keys: [...doc.keys, ...extra] }, "example.org");
    expect(parsed.x509Authorities).toHaveLength(1);
    expect([...parsed.jwtBundle.keys()]).toEqual(["k1"]);
    expect(parsed.sequence).toBe(2);
    expect(jwtBundleToJson(parsed.jwtBundle).keys).toEqual([expect.objectContaining({ kid: "k1", use: "jwt-svid" })]);
    const empty = parseSpiffeBundle({ keys: [] }, "example.org");
    expect(empty.x509Authorities).toHaveLength(0);
    expect(empty.jwtBundle.size).toBe(0);
  });

  it("rejects malformed documents with INVALID_BUNDLE, and nothing else (property)", () => {
    expect(() => parseSpiffeBundleText("{", "example.org")).toThrow("not JSON");
    expect(() => parseSpiffeBundle({ keys: [{ kty: "EC", use: "jwt-svid" }] }, "example.org")).toThrow("no kid");
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          parseSpiffeBundle(value, "example.org");
        } catch (error) {
          expect(isMandateError(error, "INVALID_BUNDLE")).toBe(true);
        }
      }),
      { numRuns: 1000 },
    );
    fc.assert(
      fc.property(fc.array(fc.record({ kty: fc.constantFrom("EC", "RSA", "OKP", "x"), use: fc.constantFrom("jwt-svid", "x509-svid", "y"), kid: fc.string(), x5c: fc.array(fc.string()), crv: fc.string(), x: fc.string() }, { requiredKeys: [] }), { maxLength: 5 }), (keys) => {
        try {
          parseSpiffeBundle({ keys }, "example.org");
        } catch (error) {
          expect(isMandateError(error, "INVALID_BUNDLE")).toBe(true);
        }
      }),
      { numRuns: 1000 },
    );
  });
});
