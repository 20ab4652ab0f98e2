import { execFile } from "node:child_process";
import { KeyObject, X509Certificate, createHash, generateKeyPairSync, webcrypto } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CsrKeyAlgorithm } from "./csr.js";
import { DerReader, TAG } from "./der/reader.js";
import { positiveInteger } from "./der/writer.js";
import { inspectCertificate } from "./x509-inspect.js";
import { type X509SvidFields, createX509SvidBuilder } from "./x509-svid-builder.js";
import { EC_P256, certToPem, x509 } from "./x509-util.js";

const exec = promisify(execFile);
const TD = "example.org";

interface TestCa {
  certDer: Buffer;
  cert: x509.X509Certificate;
  privateKey: KeyObject;
  signingKey: webcrypto.CryptoKey;
}

/** A CA made with @peculiar/x509 here, so these tests depend on nothing but the builder. */
async function makeCa(name: string, parent: TestCa | undefined, options: { notAfter?: Date; keyCertSign?: boolean; ski?: boolean; uri?: string } = {}): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const usage = options.keyCertSign === false ? x509.KeyUsageFlags.digitalSignature : x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign;
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(true, parent ? 0 : 1, true), new x509.KeyUsagesExtension(usage, true)];
  if (options.ski !== false) extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  if (parent) extensions.push(new x509.AuthorityKeyIdentifierExtension(parent.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId));
  extensions.push(new x509.SubjectAlternativeNameExtension([{ type: "url", value: options.uri ?? `spiffe://${TD}` }]));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: "01" + createHash("sha1").update(name).digest("hex").slice(0, 30),
    subject: `O=Mandate test, CN=${name}`,
    issuer: parent ? parent.cert.subject : `O=Mandate test, CN=${name}`,
    notBefore: new Date("2020-01-01T00:00:00Z"),
    notAfter: options.notAfter ?? new Date("2200-01-01T00:00:00Z"),
    signingAlgorithm: EC_P256,
    publicKey: keys.publicKey,
    signingKey: parent ? parent.signingKey : keys.privateKey,
    extensions,
  });
  return { certDer: Buffer.from(cert.rawData), cert, privateKey: KeyObject.from(keys.privateKey), signingKey: keys.privateKey };
}

const LEAF_KEYS: Record<CsrKeyAlgorithm, { publicKey: KeyObject; importAlgorithm: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams | webcrypto.Algorithm }> = {
  "ec-p256": { publicKey: generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey, importAlgorithm: { name: "ECDSA", namedCurve: "P-256" } },
  "ec-p384": { publicKey: generateKeyPairSync("ec", { namedCurve: "P-384" }).publicKey, importAlgorithm: { name: "ECDSA", namedCurve: "P-384" } },
  ed25519: { publicKey: generateKeyPairSync("ed25519").publicKey, importAlgorithm: { name: "Ed25519" } },
  rsa: { publicKey: generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey, importAlgorithm: { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } },
};
const spkiOf = (algorithm: CsrKeyAlgorithm) => LEAF_KEYS[algorithm].publicKey.export({ type: "spki", format: "der" });

let root: TestCa;
let intermediate: TestCa;
let work: string;
beforeAll(async () => {
  root = await makeCa("root", undefined);
  intermediate = await makeCa("intermediate", root);
  work = await mkdtemp(join(tmpdir(), "mandate-builder-"));
});
afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

function tbsOf(certDer: Buffer): Buffer {
  return new DerReader(certDer, "INVALID_CERTIFICATE", "certificate").enter(TAG.SEQUENCE).read(TAG.SEQUENCE).bytes;
}

/** The same leaf built by the reference library: same fields, same extensions in the same order and criticality. */
async function buildWithLibrary(fields: X509SvidFields): Promise<Buffer> {
  const leafKey = LEAF_KEYS[fields.keyAlgorithm];
  const publicKey = await webcrypto.subtle.importKey("spki", fields.spkiDer, leafKey.importAlgorithm, true, ["verify"]);
  const usage = x509.KeyUsageFlags.digitalSignature | (fields.keyAlgorithm === "rsa" ? x509.KeyUsageFlags.keyEncipherment : 0);
  const cert = await x509.X509CertificateGenerator.create({
    // The library takes the INTEGER's content octets, sign octet included.
    serialNumber: positiveInteger(fields.serial).subarray(2).toString("hex"),
    subject: "",
    issuer: intermediate.cert.subject,
    notBefore: fields.notBefore,
    notAfter: fields.notAfter,
    signingAlgorithm: EC_P256,
    publicKey,
    signingKey: intermediate.signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(usage, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      new x509.AuthorityKeyIdentifierExtension(intermediate.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId),
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: fields.spiffeId }], true),
    ],
  });
  return Buffer.from(cert.rawData);
}

const SEGMENT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_".split("");
const segment = fc.string({ unit: fc.constantFrom(...SEGMENT_CHARS), minLength: 1, maxLength: 64 }).filter((s) => s !== "." && s !== "..");
const prefix = `spiffe://${TD}/`;
/** IDs up to and exactly at the 2048-byte limit of the SPIFFE ID standard. */
const spiffeIdArb = fc.oneof(
  fc.array(segment, { minLength: 1, maxLength: 8 }).map((segments) => prefix + segments.join("/")),
  fc.tuple(fc.integer({ min: 1800, max: 2048 }), fc.constantFrom(...SEGMENT_CHARS.filter((c) => c !== "."))).map(([length, c]) => prefix + c.repeat(length - prefix.length)),
);
const BOUNDARY = Date.parse("2050-01-01T00:00:00Z");
const dateArb = fc.oneof(
  fc.date({ min: new Date("2020-01-01T00:00:00Z"), max: new Date("2150-01-01T00:00:00Z"), noInvalidDate: true }),
  fc.integer({ min: -3 * 86400, max: 3 * 86400 }).map((s) => new Date(BOUNDARY + s * 1000)),
);
const serialArb = fc.uint8Array({ minLength: 16, maxLength: 16 }).filter((b) => b.some((x) => x !== 0)).map((b) => Buffer.from(b));

function fieldsFor(algorithm: CsrKeyAlgorithm, overrides: Partial<X509SvidFields> = {}): X509SvidFields {
  const now = Date.now();
  return {
    spiffeId: `spiffe://${TD}/agent/x`,
    spkiDer: spkiOf(algorithm),
    keyAlgorithm: algorithm,
    serial: Buffer.from("8f0102030405060708090a0b0c0d0e0f", "hex"),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 3600_000),
    ...overrides,
  };
}

describe("X509-SVID DER template", () => {
  it("equals @peculiar/x509's TBSCertificate byte for byte, and both signatures verify (property)", async () => {
    const builder = createX509SvidBuilder(intermediate);
    const issuerKey = new X509Certificate(intermediate.certDer).publicKey;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<CsrKeyAlgorithm>("ec-p256", "ec-p384", "ed25519", "rsa"),
        spiffeIdArb,
        serialArb,
        dateArb,
        fc.integer({ min: 1, max: 40 * 365 * 86400 }),
        async (algorithm, spiffeId, serial, start, lifetimeSeconds) => {
          const notBefore = new Date(Math.floor(start.getTime() / 1000) * 1000);
          const fields = fieldsFor(algorithm, { spiffeId, serial, notBefore, notAfter: new Date(notBefore.getTime() + lifetimeSeconds * 1000) });
          const ours = await builder.buildX509Svid(fields);
          const theirs = await buildWithLibrary(fields);
          expect(tbsOf(ours).toString("hex")).toBe(tbsOf(theirs).toString("hex"));
          expect(builder.buildTbs(fields).equals(tbsOf(ours))).toBe(true);
          expect(new X509Certificate(ours).verify(issuerKey)).toBe(true);
          expect(new X509Certificate(theirs).verify(issuerKey)).toBe(true);
        },
      ),
      { numRuns: 120 },
    );
  });

  it("drops sub-second precision the same way the library does", async () => {
    const builder = createX509SvidBuilder(intermediate);
    const fields = fieldsFor("ec-p256", { notBefore: new Date("2049-12-31T23:59:59.999Z"), notAfter: new Date("2050-01-01T00:00:00.500Z") });
    expect(builder.buildTbs(fields).toString("hex")).toBe(tbsOf(await buildWithLibrary(fields)).toString("hex"));
  });

  it("carries exactly the SPIFFE leaf profile, read back with our own parser", async () => {
    for (const algorithm of ["ec-p256", "rsa"] as const) {
      const fields = fieldsFor(algorithm);
      const info = inspectCertificate(await createX509SvidBuilder(intermediate).buildX509Svid(fields));
      expect(info).toMatchObject({
        version: 3,
        serialHex: "008f0102030405060708090a0b0c0d0e0f".slice(2),
        isCa: false,
        uriSans: [fields.spiffeId],
        sanCritical: true,
        subjectEmpty: true,
        extKeyUsage: ["1.3.6.1.5.5.7.3.1", "1.3.6.1.5.5.7.3.2"],
        authorityKeyId: Buffer.from(intermediate.cert.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId, "hex").toString("hex"),
        unknownCriticalExtensions: [],
        signatureAlgorithmOid: "1.2.840.10045.4.3.2",
      });
      expect(info.issuerDer.equals(inspectCertificate(intermediate.certDer).subjectDer)).toBe(true);
      expect(info.keyUsage).toMatchObject({ digitalSignature: true, keyEncipherment: algorithm === "rsa", keyCertSign: false, cRLSign: false });
      const keyBits = fields.spkiDer.subarray(fields.spkiDer.length - (algorithm === "rsa" ? 270 : 65));
      expect(info.subjectKeyId).toBe(createHash("sha1").update(keyBits).digest("hex"));
    }
  });

  it("produces a chain that `openssl verify` accepts and whose extensions openssl reads as intended", async () => {
    const builder = createX509SvidBuilder(intermediate);
    await writeFile(join(work, "root.pem"), certToPem(root.certDer));
    await writeFile(join(work, "intermediate.pem"), certToPem(intermediate.certDer));
    for (const algorithm of ["ec-p256", "ec-p384", "ed25519", "rsa"] as const) {
      const leafPath = join(work, `leaf-${algorithm}.pem`);
      await writeFile(leafPath, certToPem(await builder.buildX509Svid(fieldsFor(algorithm))));
      const verify = await exec("openssl", ["verify", "-CAfile", join(work, "root.pem"), "-untrusted", join(work, "intermediate.pem"), leafPath]);
      expect(verify.stdout.trim()).toBe(`${leafPath}: OK`);
      const text = (await exec("openssl", ["x509", "-in", leafPath, "-noout", "-text"])).stdout;
      expect(text).toMatch(/Version: 3 \(0x2\)/);
      expect(text).toMatch(/Subject: *\n/);
      expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
      expect(text).toMatch(algorithm === "rsa" ? /X509v3 Key Usage: critical\s+Digital Signature, Key Encipherment\n/ : /X509v3 Key Usage: critical\s+Digital Signature\n/);
      expect(text).toMatch(/X509v3 Extended Key Usage: *\n\s+TLS Web Server Authentication, TLS Web Client Authentication/);
      expect(text).toMatch(/X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/example.org\/agent\/x\n/);
    }
  });

  it("refuses to outlive its issuer, and refuses inverted or invalid dates", async () => {
    const builder = createX509SvidBuilder(intermediate);
    const outliving = fieldsFor("ec-p256", { notAfter: new Date("2200-01-01T00:00:01Z") });
    await expect(builder.buildX509Svid(outliving)).rejects.toMatchObject({ code: "CA_UNAVAILABLE", message: expect.stringContaining("outlives") });
    expect(() => builder.buildTbs(fieldsFor("ec-p256", { notAfter: new Date("2200-01-01T00:00:00Z") }))).not.toThrow();
    const now = new Date();
    expect(() => builder.buildTbs(fieldsFor("ec-p256", { notBefore: now, notAfter: now }))).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
    expect(() => builder.buildTbs(fieldsFor("ec-p256", { notBefore: new Date(Number.NaN) }))).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });

  it("refuses IDs that are invalid, name the trust domain itself or another trust domain", () => {
    const builder = createX509SvidBuilder(intermediate);
    for (const spiffeId of [`spiffe://${TD}`, "spiffe://other.org/agent/x", `spiffe://${TD}/a/../b`, `https://${TD}/a`, `spiffe://${TD}/${"a".repeat(2048)}`]) {
      expect(() => builder.buildTbs(fieldsFor("ec-p256", { spiffeId })), spiffeId).toThrow(expect.objectContaining({ code: "INVALID_SPIFFE_ID" }));
    }
  });

  it("refuses zero or over-long serials, and a public key that does not fit its declared type", () => {
    const builder = createX509SvidBuilder(intermediate);
    const bad = (overrides: Partial<X509SvidFields>) => () => builder.buildTbs(fieldsFor("ec-p256", overrides));
    expect(bad({ serial: Buffer.alloc(16) })).toThrow("positive");
    expect(bad({ serial: Buffer.alloc(20, 0x80) })).toThrow("20 octets");
    expect(bad({ serial: Buffer.alloc(20, 0x7f) })).not.toThrow();
    expect(bad({ keyAlgorithm: "ec-p384" })).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT", message: expect.stringContaining("not an ec-p384") }));
    expect(bad({ spkiDer: Buffer.concat([spkiOf("ec-p256"), Buffer.from([0])]) })).toThrow("trailing");
    expect(bad({ spkiDer: Buffer.from("3000", "hex") })).toThrow(expect.objectContaining({ code: "INVALID_ARGUMENT" }));
  });

  it("refuses an issuer that is not a signing CA, lacks a key identifier, or does not own the key", async () => {
    const notSigning = await makeCa("no-keycertsign", root, { keyCertSign: false });
    expect(() => createX509SvidBuilder(notSigning)).toThrow(expect.objectContaining({ code: "CA_UNAVAILABLE" }));
    const noSki = await makeCa("no-ski", root, { ski: false });
    expect(() => createX509SvidBuilder(noSki)).toThrow("subjectKeyIdentifier");
    expect(() => createX509SvidBuilder({ certDer: intermediate.certDer, privateKey: root.privateKey })).toThrow("does not match");
    const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    expect(() => createX509SvidBuilder({ certDer: intermediate.certDer, privateKey: rsa })).toThrow("P-256");
    expect(() => createX509SvidBuilder({ certDer: Buffer.from("3000", "hex"), privateKey: intermediate.privateKey })).toThrow(expect.objectContaining({ code: "CA_UNAVAILABLE" }));
  });
});
