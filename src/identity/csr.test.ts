import { execFile } from "node:child_process";
import { generateKeyPairSync, sign, webcrypto } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import { assertCsrRequestsOnly, parseCsr, verifyCsr } from "./csr.js";
import { DerReader, TAG } from "./der/reader.js";
import { NULL, bitString, contextConstructed, contextPrimitive, integer, octetString, oid, sequence, set } from "./der/writer.js";
import { EC_P256, pemDecodeAll, pemEncode, x509 } from "./x509-util.js";

const exec = promisify(execFile);
const ID = "spiffe://mandate.local/agent/a";
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
const P256_ARGS = ["ecparam", "-name", "prime256v1", "-genkey", "-noout"];

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

const derOf = (pem: string) => pemDecodeAll(pem, "CERTIFICATE REQUEST")[0]!;

/** Hand-assembled requests, for shapes no library will produce. */
function assemble(info: Buffer, algorithm: Buffer, signature: Buffer): Buffer {
  return sequence(info, algorithm, bitString(signature));
}
function requestInfo(spki: Buffer, attributes: Buffer[] = []): Buffer {
  return sequence(integer(0), sequence(), spki, contextConstructed(0, ...attributes));
}
function extensionRequest(...extensions: Buffer[]): Buffer {
  return sequence(oid("1.2.840.113549.1.9.14"), set(sequence(...extensions)));
}
const p256 = () => generateKeyPairSync("ec", { namedCurve: "P-256" });
const ECDSA_SHA256 = sequence(oid("1.2.840.10045.4.3.2"));

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a rejection");
}

describe("CSR parsing and proof of possession", () => {
  it("accepts CSRs from openssl for every accepted key type, as PEM and as DER", async () => {
    const cases: [string[], string][] = [
      [P256_ARGS, "ec-p256"],
      [["ecparam", "-name", "secp384r1", "-genkey", "-noout"], "ec-p384"],
      [["genpkey", "-algorithm", "ed25519"], "ed25519"],
      [["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "rsa"],
    ];
    for (const [args, algorithm] of cases) {
      const pem = await opensslCsr(args);
      for (const input of [pem, derOf(pem), new Uint8Array(derOf(pem))]) {
        const csr = parseCsr(input);
        expect(csr.keyAlgorithm).toBe(algorithm);
        await expect(verifyCsr(csr)).resolves.toBeUndefined();
      }
      const csr = parseCsr(pem);
      expect(csr.publicKey.export({ type: "spki", format: "der" }).equals(csr.spkiDer)).toBe(true);
      if (algorithm === "rsa") expect(csr.rsaModulusBits).toBe(2048);
    }
  });

  it("rejects RSA-512, RSA-1024, curves other than P-256/P-384, DSA, Ed448 and compressed points", async () => {
    const weak = await opensslCsr(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:512"]);
    expect(() => parseCsr(weak)).toThrow(expect.objectContaining({ code: "CSR_KEY_REJECTED", message: expect.stringContaining("RSA-512; RSA keys must have at least 2048 bits") }));
    const rsa1024 = await opensslCsr(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]);
    expect(() => parseCsr(rsa1024)).toThrow(expect.objectContaining({ code: "CSR_KEY_REJECTED" }));
    const k1 = await opensslCsr(["ecparam", "-name", "secp256k1", "-genkey", "-noout"]);
    expect(() => parseCsr(k1)).toThrow("curve secp256k1");
    const p521 = await opensslCsr(["ecparam", "-name", "secp521r1", "-genkey", "-noout"]);
    expect(() => parseCsr(p521)).toThrow("curve P-521");
    const ed448 = await opensslCsr(["genpkey", "-algorithm", "ed448"]);
    expect(() => parseCsr(ed448)).toThrow(expect.objectContaining({ code: "CSR_KEY_REJECTED", message: expect.stringContaining("Ed448") }));
    const params = join(work, "dsa.pem");
    await exec("openssl", ["genpkey", "-genparam", "-algorithm", "DSA", "-pkeyopt", "dsa_paramgen_bits:1024", "-out", params]);
    const dsa = await opensslCsr(["genpkey", "-paramfile", params]);
    expect(() => parseCsr(dsa)).toThrow(expect.objectContaining({ code: "CSR_KEY_REJECTED", message: expect.stringContaining("DSA") }));
    const point = p256().publicKey.export({ type: "spki", format: "der" }).subarray(-65);
    const compressedPoint = Buffer.concat([Buffer.from([2 + (point[64]! & 1)]), point.subarray(1, 33)]);
    const compressedSpki = sequence(sequence(oid("1.2.840.10045.2.1"), oid("1.2.840.10045.3.1.7")), bitString(compressedPoint));
    const compressed = assemble(requestInfo(compressedSpki), ECDSA_SHA256, Buffer.alloc(70, 1));
    expect(() => parseCsr(compressed)).toThrow(expect.objectContaining({ code: "CSR_KEY_REJECTED", message: expect.stringContaining("compressed") }));
  });

  it("rejects a CSR whose signature was not made by its key, and any flipped bit in the signed part (property)", async () => {
    const a = parseCsr(await libraryCsr());
    const b = parseCsr(await libraryCsr());
    // b's signature on a's request: same shape, wrong key.
    const forged = { ...a, signature: b.signature };
    expect((await rejection(verifyCsr(forged))).message).toContain("signature does not verify");
    const start = a.der.indexOf(a.certificationRequestInfoDer);
    await fc.assert(
      fc.asyncProperty(fc.nat(a.certificationRequestInfoDer.length * 8 - 1), async (bit) => {
        const der = Buffer.from(a.der);
        const i = start + (bit >> 3);
        der[i] = der[i]! ^ (1 << (bit & 7));
        const error = await rejection((async () => verifyCsr(parseCsr(der)))());
        expect(isMandateError(error, "INVALID_CSR") || isMandateError(error, "CSR_KEY_REJECTED"), String(error)).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("rejects a point that is not on the curve as an invalid key", async () => {
    const csr = parseCsr(await libraryCsr());
    const der = Buffer.from(csr.der);
    const pointEnd = der.indexOf(csr.spkiDer) + csr.spkiDer.length;
    der[pointEnd - 1] = der[pointEnd - 1]! ^ 1;
    const error = await rejection(verifyCsr(parseCsr(der)));
    expect(error).toMatchObject({ code: "INVALID_CSR", message: expect.stringContaining("not a valid key") });
  });

  it("requires the signature algorithm to fit the key, with the right parameters", async () => {
    const { publicKey, privateKey } = p256();
    const info = requestInfo(publicKey.export({ type: "spki", format: "der" }));
    const signature = sign("sha256", info, privateKey);
    await expect(verifyCsr(parseCsr(assemble(info, ECDSA_SHA256, signature)))).resolves.toBeUndefined();
    const asRsa = parseCsr(assemble(info, sequence(oid("1.2.840.113549.1.1.11"), NULL), signature));
    expect((await rejection(verifyCsr(asRsa))).message).toContain("sha256WithRSAEncryption does not fit a ec-p256 key");
    const asEd25519 = parseCsr(assemble(info, sequence(oid("1.3.101.112")), signature));
    expect((await rejection(verifyCsr(asEd25519))).message).toContain("Ed25519 does not fit");
    const md5 = parseCsr(assemble(info, sequence(oid("1.2.840.113549.1.1.4"), NULL), signature));
    expect((await rejection(verifyCsr(md5))).message).toContain("1.2.840.113549.1.1.4 is not accepted");
    expect(() => parseCsr(assemble(info, sequence(oid("1.2.840.10045.4.3.2"), NULL), signature))).toThrow("takes no parameters");
  });

  it("re-encodes an RSA key without NULL parameters canonically, and verifies it", async () => {
    const { publicKey, privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const canonical = publicKey.export({ type: "spki", format: "der" });
    const bits = new DerReader(canonical, "INVALID_CSR", "k").enter(TAG.SEQUENCE);
    bits.read(TAG.SEQUENCE);
    const withoutNull = sequence(sequence(oid("1.2.840.113549.1.1.1")), bitString(bits.readBitString().bits));
    const info = requestInfo(withoutNull);
    const csr = parseCsr(assemble(info, sequence(oid("1.2.840.113549.1.1.11"), NULL), sign("sha256", info, privateKey)));
    expect(csr.spkiDer.equals(canonical)).toBe(true);
    await expect(verifyCsr(csr)).resolves.toBeUndefined();
  });

  it("refuses a second extensionRequest, a repeated extension and non-DER requests", () => {
    const spki = p256().publicKey.export({ type: "spki", format: "der" });
    const san = sequence(oid("2.5.29.17"), octetString(sequence(contextPrimitive(6, Buffer.from("spiffe://x/y")))));
    const fake = Buffer.alloc(70, 1);
    expect(() => parseCsr(assemble(requestInfo(spki, [extensionRequest(san), extensionRequest(san)]), ECDSA_SHA256, fake))).toThrow("more than one extensionRequest");
    expect(() => parseCsr(assemble(requestInfo(spki, [extensionRequest(san, san)]), ECDSA_SHA256, fake))).toThrow("requested twice");
    const twoValues = sequence(oid("1.2.840.113549.1.9.14"), set(sequence(san), sequence(san)));
    expect(() => parseCsr(assemble(requestInfo(spki, [twoValues]), ECDSA_SHA256, fake))).toThrow("trailing");
    const version1 = sequence(integer(1), sequence(), spki, contextConstructed(0));
    expect(() => parseCsr(assemble(version1, ECDSA_SHA256, fake))).toThrow("unsupported version");
  });

  it("lets a CSR ask for nothing, or for exactly the caller's own SPIFFE ID", async () => {
    const plain = parseCsr(await libraryCsr());
    expect(plain.uriSans).toEqual([]);
    expect(() => assertCsrRequestsOnly(plain, ID)).not.toThrow();
    const own = parseCsr(await libraryCsr([{ type: "url", value: ID }]));
    expect(() => assertCsrRequestsOnly(own, ID)).not.toThrow();
    const fromOpenssl = parseCsr(await opensslCsr(P256_ARGS, ["-addext", `subjectAltName=URI:${ID}`]));
    expect(fromOpenssl.uriSans).toEqual([ID]);
    expect(() => assertCsrRequestsOnly(fromOpenssl, ID)).not.toThrow();
  });

  it("rejects CSRs that ask for another SPIFFE ID, extra SANs or a CA, naming what was asked", async () => {
    const cases: [{ type: "url" | "dns" | "ip" | "email"; value: string }[], string][] = [
      [[{ type: "url", value: "spiffe://mandate.local/agent/admin" }], 'URI SAN "spiffe://mandate.local/agent/admin"'],
      [[{ type: "url", value: ID }, { type: "dns", value: "evil.example" }], 'DNS SANs "evil.example"'],
      [[{ type: "url", value: ID }, { type: "url", value: ID }], "2 URI SANs"],
      [[{ type: "ip", value: "10.0.0.1" }], "IP SANs 10.0.0.1"],
      [[{ type: "email", value: "a@b.c" }], 'email SANs "a@b.c"'],
    ];
    for (const [sans, named] of cases) {
      const csr = parseCsr(await libraryCsr(sans));
      expect(() => assertCsrRequestsOnly(csr, ID)).toThrow(expect.objectContaining({ code: "CSR_IDENTITY_MISMATCH", message: expect.stringContaining(named) }));
    }
    const ca = parseCsr(await opensslCsr(P256_ARGS, ["-addext", "basicConstraints=critical,CA:TRUE"]));
    expect(ca.requestsCa).toBe(true);
    expect(() => assertCsrRequestsOnly(ca, ID)).toThrow(expect.objectContaining({ code: "CSR_IDENTITY_MISMATCH", message: expect.stringContaining("a CA certificate") }));
    const notCa = parseCsr(await opensslCsr(P256_ARGS, ["-addext", "basicConstraints=CA:FALSE"]));
    expect(() => assertCsrRequestsOnly(notCa, ID)).not.toThrow();
  });

  it("accepts only one canonical PEM block of at most 16 KiB", async () => {
    const pem = await libraryCsr();
    expect(() => parseCsr(`${pem}${pem}`)).toThrow("exactly one PEM block");
    expect(() => parseCsr(pem.replace("CERTIFICATE REQUEST-----\n", "CERTIFICATE REQUEST-----\n!"))).toThrow();
    expect(() => parseCsr(pem.replace(/-----END CERTIFICATE REQUEST-----/, "-----END CERTIFICATE-----"))).toThrow("PEM");
    expect(() => parseCsr("not a pem")).toThrow(expect.objectContaining({ code: "INVALID_CSR" }));
    expect(() => parseCsr(Buffer.alloc(16 * 1024 + 1))).toThrow("larger than 16384 bytes");
    expect(() => parseCsr(pem + " ".repeat(16 * 1024))).toThrow("larger than");
    expect(() => parseCsr(Buffer.alloc(0))).toThrow("empty");
    expect(() => parseCsr(42 as unknown as string)).toThrow(expect.objectContaining({ code: "INVALID_CSR" }));
  });

  it("never throws anything but INVALID_CSR / CSR_KEY_REJECTED on garbage or mutated input (property)", async () => {
    const valid = derOf(await libraryCsr([{ type: "url", value: ID }]));
    const mutated = fc.oneof(
      fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
      fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
        const copy = Buffer.from(valid);
        copy[i] = v;
        return copy;
      }),
      fc.nat(valid.length).map((n) => valid.subarray(0, n)),
      fc.tuple(fc.nat(valid.length), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([i, extra]) => Buffer.concat([valid.subarray(0, i), extra, valid.subarray(i)])),
    );
    const allowed = (error: unknown) => isMandateError(error, "INVALID_CSR") || isMandateError(error, "CSR_KEY_REJECTED");
    fc.assert(
      fc.property(mutated, (der) => {
        try {
          parseCsr(der);
        } catch (error) {
          expect(allowed(error), String(error)).toBe(true);
        }
      }),
      { numRuns: 4000 },
    );
    await fc.assert(
      fc.asyncProperty(mutated, async (der) => {
        try {
          const csr = parseCsr(der);
          await verifyCsr(csr);
          assertCsrRequestsOnly(csr, ID);
        } catch (error) {
          expect(allowed(error) || isMandateError(error, "CSR_IDENTITY_MISMATCH"), String(error)).toBe(true);
        }
      }),
      { numRuns: 400 },
    );
  });
});
