import { X509Certificate, webcrypto } from "node:crypto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import { DerReader, TAG } from "./der/reader.js";
import { bitString, oid, sequence } from "./der/writer.js";
import { inspectCertificate } from "./x509-inspect.js";
import { EC_P256, x509 } from "./x509-util.js";

let keys: webcrypto.CryptoKeyPair;
beforeAll(async () => {
  keys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
});

async function certificate(extensions: x509.Extension[], subject = "CN=test"): Promise<Buffer> {
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "00ff01",
    name: subject,
    notBefore: new Date("2024-02-29T12:00:00Z"),
    notAfter: new Date("2051-01-01T00:00:00Z"),
    signingAlgorithm: EC_P256,
    keys,
    extensions,
  });
  return Buffer.from(cert.rawData);
}

function parts(der: Buffer) {
  const cert = new DerReader(der, "INVALID_CERTIFICATE", "c").enter(TAG.SEQUENCE);
  return { tbs: cert.read(TAG.SEQUENCE).bytes, algorithm: cert.read(TAG.SEQUENCE).bytes, signature: cert.readBitString().bits };
}

describe("inspectCertificate", () => {
  it("reads serial, validity across UTCTime/GeneralizedTime, CA constraints, key usage and key identifiers", async () => {
    const der = await certificate([
      new x509.BasicConstraintsExtension(true, 2, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.decipherOnly, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.AuthorityKeyIdentifierExtension("0102"),
    ]);
    const info = inspectCertificate(der);
    expect(info).toMatchObject({
      version: 3,
      serialHex: "ff01",
      isCa: true,
      pathLength: 2,
      uriSans: [],
      sans: undefined,
      authorityKeyId: "0102",
      subjectEmpty: false,
      signatureAlgorithmOid: "1.2.840.10045.4.3.2",
    });
    expect(info.notBefore.toISOString()).toBe("2024-02-29T12:00:00.000Z");
    expect(info.notAfter.toISOString()).toBe("2051-01-01T00:00:00.000Z");
    expect(info.keyUsage).toEqual({
      digitalSignature: false,
      nonRepudiation: false,
      keyEncipherment: false,
      dataEncipherment: false,
      keyAgreement: false,
      keyCertSign: true,
      cRLSign: true,
      encipherOnly: false,
      decipherOnly: true,
    });
    const node = new X509Certificate(der);
    expect(info.subjectKeyId).toBe(new x509.X509Certificate(der).getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);
    expect(info.spkiDer.equals(node.publicKey.export({ type: "spki", format: "der" }))).toBe(true);
    expect(info.tbsDer.equals(parts(der).tbs)).toBe(true);
    expect(info.issuerDer.equals(info.subjectDer)).toBe(true);
  });

  it("counts URI SANs with the ASN.1 reader, so a comma inside a URI cannot forge a second one", async () => {
    const sneaky = "spiffe://b.org/y, URI:spiffe://a.org/x";
    const der = await certificate([
      new x509.SubjectAlternativeNameExtension([
        { type: "url", value: sneaky },
        { type: "dns", value: "a.example" },
        { type: "ip", value: "10.1.2.3" },
      ]),
    ]);
    const info = inspectCertificate(der);
    expect(info.uriSans).toEqual([sneaky]);
    expect(info.sans).toMatchObject({ dnsNames: ["a.example"], ips: ["10.1.2.3"] });
    expect(info.sanCritical).toBe(false);
  });

  it("reports critical extensions it does not interpret, and ignores non-critical ones", async () => {
    const der = await certificate([new x509.Extension("1.2.3.4.5", true, new Uint8Array([5, 0])), new x509.Extension("1.2.3.4.6", false, new Uint8Array([0xff]))]);
    expect(inspectCertificate(der).unknownCriticalExtensions).toEqual(["1.2.3.4.5"]);
  });

  it("rejects duplicate extensions, a signature algorithm that differs outside the signed part, and trailing bytes", async () => {
    const duplicate = await certificate([new x509.BasicConstraintsExtension(false), new x509.BasicConstraintsExtension(false)]);
    expect(() => inspectCertificate(duplicate)).toThrow("appears twice");
    const plain = await certificate([]);
    const { tbs, signature } = parts(plain);
    expect(() => inspectCertificate(sequence(tbs, sequence(oid("1.2.840.10045.4.3.3")), bitString(signature)))).toThrow("differs inside and outside");
    expect(() => inspectCertificate(Buffer.concat([plain, Buffer.from([0])]))).toThrow("trailing");
    expect(() => inspectCertificate("not a buffer" as unknown as Buffer)).toThrow(expect.objectContaining({ code: "INVALID_CERTIFICATE" }));
  });

  it("throws only INVALID_CERTIFICATE on random bytes and mutated certificates (property)", async () => {
    const valid = await certificate([
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: "url", value: "spiffe://a.org/x" }], true),
      new x509.AuthorityKeyIdentifierExtension("0102"),
    ]);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
          fc.tuple(fc.nat(valid.length - 1), fc.integer({ min: 0, max: 255 })).map(([i, v]) => {
            const copy = Buffer.from(valid);
            copy[i] = v;
            return copy;
          }),
          fc.nat(valid.length).map((n) => valid.subarray(0, n)),
          fc.tuple(fc.nat(valid.length), fc.uint8Array({ minLength: 1, maxLength: 4 })).map(([i, extra]) => Buffer.concat([valid.subarray(0, i), extra, valid.subarray(i)])),
        ),
        (der) => {
          try {
            inspectCertificate(der);
          } catch (error) {
            expect(isMandateError(error, "INVALID_CERTIFICATE"), String(error)).toBe(true);
          }
        },
      ),
      { numRuns: 5000 },
    );
  });
});
