import { execFile } from "node:child_process";
import { X509Certificate, generateKeyPairSync, webcrypto } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateIntermediateAuthority, generateRootAuthority, type GeneratedAuthority } from "./authority-keys.js";
import type { CsrKeyAlgorithm } from "./csr.js";
import { DerReader, TAG } from "./der/reader.js";
import { createX509SvidBuilder } from "./x509-svid-builder.js";
import { EC_P256, certToPem, randomSerial, x509 } from "./x509-util.js";

const exec = promisify(execFile);
let root: GeneratedAuthority;
let intermediate: GeneratedAuthority;
let work: string;

const KEY_TYPES: { algorithm: CsrKeyAlgorithm; generate: () => { spki: Buffer }; webAlg: webcrypto.AlgorithmIdentifier | webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams }[] = [
  { algorithm: "ec-p256", generate: () => spkiOf(generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey), webAlg: { name: "ECDSA", namedCurve: "P-256" } },
  { algorithm: "ec-p384", generate: () => spkiOf(generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey), webAlg: { name: "ECDSA", namedCurve: "P-384" } },
  { algorithm: "ed25519", generate: () => spkiOf(generateKeyPairSync("ed25519").publicKey), webAlg: { name: "Ed25519" } },
  { algorithm: "rsa", generate: () => spkiOf(generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey), webAlg: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } },
];
function spkiOf(key: import("node:crypto").KeyObject) {
  return { spki: key.export({ type: "spki", format: "der" }) };
}
const keys = new Map<CsrKeyAlgorithm, { spki: Buffer }>();

beforeAll(async () => {
  const t = Date.now();
  root = await generateRootAuthority("example.org", new Date(t - 60_000), new Date(t + 200 * 365 * 86400_000));
  intermediate = await generateIntermediateAuthority("example.org", root, new Date(t - 60_000), new Date(t + 199 * 365 * 86400_000));
  for (const type of KEY_TYPES) keys.set(type.algorithm, type.generate());
  work = await mkdtemp(join(tmpdir(), "mandate-builder-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function tbsOf(certDer: Buffer): Buffer {
  return new DerReader(certDer, "INVALID_CERTIFICATE", "certificate").enter(TAG.SEQUENCE).read(TAG.SEQUENCE).bytes;
}

async function buildWithLibrary(fields: { spiffeId: string; spki: Buffer; algorithm: CsrKeyAlgorithm; serial: Buffer; notBefore: Date; notAfter: Date }): Promise<Buffer> {
  const type = KEY_TYPES.find((k) => k.algorithm === fields.algorithm)!;
  const publicKey = await webcrypto.subtle.importKey("spki", fields.spki, type.webAlg, true, ["verify"]);
  const signingKey = await webcrypto.subtle.importKey("pkcs8", intermediate.privateKey.export({ type: "pkcs8", format: "der" }), EC_P256, false, ["sign"]);
  const issuer = new x509.X509Certificate(intermediate.certDer);
  const ski = issuer.getExtension(x509.SubjectKeyIdentifierExtension)!;
  const usage = x509.KeyUsageFlags.digitalSignature | (fields.algorithm === "rsa" ? x509.KeyUsageFlags.keyEncipherment : 0);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: fields.serial.toString("hex"),
    subject: "",
    issuer: issuer.subject,
    notBefore: fields.notBefore,
    notAfter: fields.notAfter,
    signingAlgorithm: EC_P256,
    publicKey,
    signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(usage, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      new x509.AuthorityKeyIdentifierExtension(ski.keyId),
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: fields.spiffeId }], true),
    ],
  });
  return Buffer.from(cert.rawData);
}

const segment = fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_".split("")), minLength: 1, maxLength: 200 }).filter((s) => s !== "." && s !== "..");

describe("X509-SVID DER template", () => {
  it("equals @peculiar/x509's TBSCertificate byte for byte, and both signatures verify (property)", async () => {
    const builder = createX509SvidBuilder(intermediate);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...KEY_TYPES.map((k) => k.algorithm)),
        fc.array(segment, { minLength: 1, maxLength: 10 }),
        fc.date({ min: new Date("2020-01-01"), max: new Date("2100-01-01"), noInvalidDate: true }),
        fc.integer({ min: 1, max: 60 * 365 * 86400 }),
        async (algorithm, segments, start, lifetimeSeconds) => {
          const spiffeId = `spiffe://example.org/${segments.join("/")}`.slice(0, 2048).replace(/\/$/, "");
          const notBefore = new Date(Math.floor(start.getTime() / 1000) * 1000);
          const notAfter = new Date(notBefore.getTime() + lifetimeSeconds * 1000);
          const fields = { spiffeId, spki: keys.get(algorithm)!.spki, algorithm, serial: randomSerial(), notBefore, notAfter };
          const ours = await builder.buildX509Svid({ ...fields, spkiDer: fields.spki, keyAlgorithm: algorithm });
          const theirs = await buildWithLibrary(fields);
          expect(tbsOf(ours).toString("hex")).toBe(tbsOf(theirs).toString("hex"));
          const parsed = new X509Certificate(ours);
          expect(parsed.verify(intermediate.cert.publicKey)).toBe(true);
          expect(new X509Certificate(theirs).verify(intermediate.cert.publicKey)).toBe(true);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("produces a chain that `openssl verify` accepts and whose extensions openssl reads as intended", async () => {
    const builder = createX509SvidBuilder(intermediate);
    const leaf = await builder.buildX509Svid({
      spiffeId: "spiffe://example.org/agent/x",
      spkiDer: keys.get("ec-p256")!.spki,
      keyAlgorithm: "ec-p256",
      serial: randomSerial(),
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 3600_000),
    });
    await writeFile(join(work, "root.pem"), certToPem(root.certDer));
    await writeFile(join(work, "int.pem"), certToPem(intermediate.certDer));
    await writeFile(join(work, "leaf.pem"), certToPem(leaf));
    const verify = await exec("openssl", ["verify", "-CAfile", join(work, "root.pem"), "-untrusted", join(work, "int.pem"), join(work, "leaf.pem")]);
    expect(verify.stdout).toContain("leaf.pem: OK");
    const text = (await exec("openssl", ["x509", "-in", join(work, "leaf.pem"), "-noout", "-text"])).stdout;
    expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
    expect(text).toMatch(/TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(text).toMatch(/X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/example.org\/agent\/x\n/);
  });

  it("refuses to outlive its issuer", async () => {
    const builder = createX509SvidBuilder(intermediate);
    await expect(
      builder.buildX509Svid({ spiffeId: "spiffe://example.org/a", spkiDer: keys.get("ec-p256")!.spki, keyAlgorithm: "ec-p256", serial: randomSerial(), notBefore: new Date(), notAfter: new Date(Date.now() + 300 * 365 * 86400_000) }),
    ).rejects.toThrow("outlives");
  });
});
