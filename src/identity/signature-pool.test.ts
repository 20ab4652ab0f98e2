import { createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { SignatureVerifierPool } from "./signature-pool.js";

describe("SignatureVerifierPool", () => {
  const pool = new SignatureVerifierPool(1);
  afterAll(() => pool.close());
  const keyPair = () => {
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    return { spki: publicKey.export({ format: "der", type: "spki" }), privateKey };
  };

  it("a key imported once still decides every later signature by itself", async () => {
    const a = keyPair();
    const b = keyPair();
    const data = Buffer.from("renewal");
    const byA = sign("sha256", data, { key: a.privateKey, dsaEncoding: "ieee-p1363" });
    const byB = sign("sha256", data, { key: b.privateKey, dsaEncoding: "ieee-p1363" });
    expect(await pool.verify("sha256", a.spki, data, byA, { p1363: true })).toBe(true);
    // The second use of a.spki finds its imported key; b's signature must still fail under it.
    expect(await pool.verify("sha256", a.spki, data, byB, { p1363: true })).toBe(false);
    expect(await pool.verify("sha256", a.spki, Buffer.from("other"), byA, { p1363: true })).toBe(false);
    expect(await pool.verify("sha256", b.spki, data, byB, { p1363: true })).toBe(true);
    expect(await pool.verify("sha256", b.spki, data, byA, { p1363: true })).toBe(false);
  });

  it("with several workers, each key still verifies only its own signatures", async () => {
    const wide = new SignatureVerifierPool(3);
    try {
      const data = Buffer.from("renewal");
      const pairs = Array.from({ length: 12 }, keyPair);
      const signatures = pairs.map((p) => sign("sha256", data, { key: p.privateKey, dsaEncoding: "ieee-p1363" }));
      for (let round = 0; round < 2; round++) {
        const own = await Promise.all(pairs.map((p, i) => wide.verify("sha256", p.spki, data, signatures[i]!, { p1363: true })));
        const other = await Promise.all(pairs.map((p, i) => wide.verify("sha256", p.spki, data, signatures[(i + 1) % pairs.length]!, { p1363: true })));
        expect(own).toEqual(pairs.map(() => true));
        expect(other).toEqual(pairs.map(() => false));
      }
    } finally {
      await wide.close();
    }
  });

  it("the P-256 fast import decides exactly as OpenSSL's SPKI decoder does, whatever byte of the key or signature is changed", async () => {
    const data = Buffer.from("renewal");
    const keys = Array.from({ length: 4 }, keyPair);
    const signatures = keys.map((k) => sign("sha256", data, { key: k.privateKey, dsaEncoding: "ieee-p1363" }));
    const reference = (spki: Buffer, signature: Buffer) => {
      try {
        return verify("sha256", data, { key: createPublicKey({ key: spki, format: "der", type: "spki" }), dsaEncoding: "ieee-p1363" }, signature);
      } catch {
        return false;
      }
    };
    await fc.assert(
      fc.asyncProperty(fc.nat(3), fc.nat(3), fc.option(fc.tuple(fc.nat(90), fc.integer({ min: 1, max: 255 }))), fc.option(fc.tuple(fc.nat(63), fc.integer({ min: 1, max: 255 }))), async (k, s, keyFlip, signatureFlip) => {
        const spki = Buffer.from(keys[k]!.spki);
        if (keyFlip) spki[keyFlip[0]]! ^= keyFlip[1];
        const signature = Buffer.from(signatures[s]!);
        if (signatureFlip) signature[signatureFlip[0]]! ^= signatureFlip[1];
        expect(await pool.verify("sha256", spki, data, signature, { p1363: true })).toBe(reference(spki, signature));
      }),
      { numRuns: 300 },
    );
  });

  it("keys other than P-256 still go through the SPKI decoder", async () => {
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-384" });
    const spki = publicKey.export({ format: "der", type: "spki" });
    const data = Buffer.from("renewal");
    expect(await pool.verify("sha384", spki, data, sign("sha384", data, privateKey))).toBe(true);
    expect(await pool.verify("sha384", spki, Buffer.from("other"), sign("sha384", data, privateKey))).toBe(false);
  });

  it("a malformed key verifies nothing and is not kept", async () => {
    const data = Buffer.from("renewal");
    const a = keyPair();
    const byA = sign("sha256", data, { key: a.privateKey, dsaEncoding: "ieee-p1363" });
    const broken = Buffer.from(a.spki);
    broken[broken.length - 1]! ^= 0xff;
    expect(await pool.verify("sha256", broken, data, byA, { p1363: true })).toBe(false);
    expect(await pool.verify("sha256", broken, data, byA, { p1363: true })).toBe(false);
  });
});
