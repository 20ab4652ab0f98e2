import { execFile } from "node:child_process";
import { webcrypto } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyAndCsr } from "../agent/csr.js";
import { isMandateError } from "../errors/index.js";
import { assertCsrRequestsOnly, parseCsr, verifyCsr } from "./csr.js";
import { EC_P256, pemDecodeAll, pemEncode, x509 } from "./x509-util.js";

const exec = promisify(execFile);
let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "mandate-csr-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A CSR made by openssl, an implementation independent of ours. */
async function opensslCsr(keyArgs: string[], extra: string[] = []): Promise<string> {
  const key = join(work, `k${Math.random()}.pem`);
  const csr = join(work, `c${Math.random()}.pem`);
  await exec("openssl", [...keyArgs, "-out", key]);
  await exec("openssl", ["req", "-new", "-key", key, "-subj", "/CN=agent", ...extra, "-out", csr]);
  return readFile(csr, "utf8");
}

async function libraryCsr(sans?: { type: "url" | "dns" | "ip" | "email"; value: string }[]): Promise<string> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: "CN=x",
    keys,
    signingAlgorithm: EC_P256,
    extensions: sans ? [new x509.SubjectAlternativeNameExtension(sans)] : [],
  });
  return pemEncode("CERTIFICATE REQUEST", new Uint8Array(csr.rawData));
}

describe("CSR parsing and proof of possession", () => {
  it("accepts CSRs from openssl for every accepted key type", async () => {
    const cases: [string[], string][] = [
      [["ecparam", "-name", "prime256v1", "-genkey", "-noout"], "ec-p256"],
      [["ecparam", "-name", "secp384r1", "-genkey", "-noout"], "ec-p384"],
      [["genpkey", "-algorithm", "ed25519"], "ed25519"],
      [["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "rsa"],
    ];
    for (const [args, algorithm] of cases) {
      const csr = parseCsr(await opensslCsr(args));
      expect(csr.keyAlgorithm).toBe(algorithm);
      await expect(verifyCsr(csr)).resolves.toBeUndefined();
    }
  });

  it("rejects an RSA-512 key and a curve we do not accept", async () => {
    const weak = await opensslCsr(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"]);
    expect(() => parseCsr(weak)).toThrow(expect.objectContaining({ code: "CSR_KEY_REJECTED", message: expect.stringContaining("RSA-512") }));
    const rsa1024 = await opensslCsr(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]);
    expect(() => parseCsr(rsa1024)).toThrow(expect.objectContaining({ code: "CSR_KEY_REJECTED" }));
    const secp256k1 = await opensslCsr(["ecparam", "-name", "secp256k1", "-genkey", "-noout"]);
    expect(() => parseCsr(secp256k1)).toThrow("curve");
  });

  it("rejects a CSR whose signature was not made by its key", async () => {
    const a = parseCsr((await generateKeyAndCsr()).csrPem);
    const b = parseCsr((await generateKeyAndCsr()).csrPem);
    // Splice b's signature onto a's request: same shape, wrong key.
    const forged = { ...a, signature: b.signature };
    await expect(verifyCsr(forged)).rejects.toThrow("signature does not verify");
    // A flipped bit anywhere in the signed part breaks it too (property).
    await fc.assert(
      fc.asyncProperty(fc.nat(a.certificationRequestInfoDer.length * 8 - 1), async (bit) => {
        const der = Buffer.from(a.der);
        const offset = a.der.indexOf(a.certificationRequestInfoDer) + Math.floor(bit / 8);
        der[offset] = der[offset]! ^ (1 << bit % 8);
        try {
          await verifyCsr(parseCsr(der));
          throw new Error("a tampered CSR verified");
        } catch (error) {
          expect(isMandateError(error)).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("lets a CSR ask for nothing, or for exactly the caller's own SPIFFE ID", async () => {
    const id = "spiffe://mandate.local/agent/a";
    const plain = parseCsr(await libraryCsr());
    expect(() => assertCsrRequestsOnly(plain, id)).not.toThrow();
    expect(plain.uriSans).toEqual([]);
  });

  it("rejects CSRs that ask for another SPIFFE ID or extra SANs", async () => {
    const id = "spiffe://mandate.local/agent/a";
    const own = parseCsr(await libraryCsr([{ type: "url", value: id }]));
    expect(() => assertCsrRequestsOnly(own, id)).not.toThrow();
    for (const sans of [
      [{ type: "url" as const, value: "spiffe://mandate.local/agent/admin" }],
      [{ type: "url" as const, value: id }, { type: "dns" as const, value: "evil.example" }],
      [{ type: "url" as const, value: id }, { type: "url" as const, value: id }],
      [{ type: "ip" as const, value: "10.0.0.1" }],
      [{ type: "email" as const, value: "a@b.c" }],
    ]) {
      const csr = parseCsr(await libraryCsr(sans));
      expect(() => assertCsrRequestsOnly(csr, id)).toThrow(expect.objectContaining({ code: "CSR_IDENTITY_MISMATCH" }));
    }
    const ca = parseCsr(await opensslCsr(["ecparam", "-name", "prime256v1", "-genkey", "-noout"], ["-addext", "basicConstraints=critical,CA:TRUE"]));
    expect(() => assertCsrRequestsOnly(ca, id)).toThrow("a CA certificate");
  });

  it("never throws anything but INVALID_CSR / CSR_KEY_REJECTED on garbage or mutated input (property)", async () => {
    const valid = pemDecodeAll((await generateKeyAndCsr()).csrPem, "CERTIFICATE REQUEST")[0]!;
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
          fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
            const copy = Buffer.from(valid);
            copy[i] = v;
            return copy;
          }),
          fc.nat(valid.length).map((n) => valid.subarray(0, n)),
        ),
        (der) => {
          try {
            parseCsr(der);
          } catch (error) {
            expect(isMandateError(error, "INVALID_CSR") || isMandateError(error, "CSR_KEY_REJECTED")).toBe(true);
          }
        },
      ),
      { numRuns: 3000 },
    );
    expect(() => parseCsr("not a pem")).toThrow("PEM");
    expect(() => parseCsr(Buffer.alloc(20_000))).toThrow("larger than");
  });
});
