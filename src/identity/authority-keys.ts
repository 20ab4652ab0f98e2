import "reflect-metadata";
import { KeyObject, X509Certificate, randomBytes, webcrypto } from "node:crypto";
import { EC_P256, randomSerial, x509 } from "./x509-util.js";

/**
 * Creation of the long-lived signing material, on the slow path (once per
 * trust domain or rotation): @peculiar/x509 builds these certificates.
 */
export interface GeneratedAuthority {
  certDer: Buffer;
  cert: X509Certificate;
  privateKey: KeyObject;
}

async function generateP256(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
}

function caExtensions(trustDomain: string, pathLength: number | undefined) {
  return [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
    // A CA's SPIFFE ID, when present, is the trust domain itself (no path).
    new x509.SubjectAlternativeNameExtension([{ type: "url", value: `spiffe://${trustDomain}` }]),
  ];
}

function toResult(cert: x509.X509Certificate, key: webcrypto.CryptoKey): GeneratedAuthority {
  const certDer = Buffer.from(cert.rawData);
  return { certDer, cert: new X509Certificate(certDer), privateKey: KeyObject.from(key) };
}

export async function generateRootAuthority(trustDomain: string, notBefore: Date, notAfter: Date): Promise<GeneratedAuthority> {
  const keys = await generateP256();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial().toString("hex"),
    name: [{ O: ["Mandate"] }, { CN: [`Mandate root CA ${trustDomain}`] }],
    notBefore,
    notAfter,
    signingAlgorithm: EC_P256,
    keys,
    extensions: [...caExtensions(trustDomain, 1), await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)],
  });
  return toResult(cert, keys.privateKey);
}

export async function generateIntermediateAuthority(
  trustDomain: string,
  parent: { cert: X509Certificate; privateKey: KeyObject },
  notBefore: Date,
  notAfter: Date,
): Promise<GeneratedAuthority> {
  const keys = await generateP256();
  const parentCert = new x509.X509Certificate(parent.cert.raw);
  const parentSki = parentCert.getExtension(x509.SubjectKeyIdentifierExtension);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial().toString("hex"),
    subject: [{ O: ["Mandate"] }, { CN: [`Mandate intermediate CA ${trustDomain} ${randomBytes(4).toString("hex")}`] }],
    issuer: parentCert.subject,
    notBefore,
    notAfter: new Date(Math.min(notAfter.getTime(), new Date(parent.cert.validTo).getTime())),
    signingAlgorithm: EC_P256,
    publicKey: keys.publicKey,
    signingKey: await webcrypto.subtle.importKey("pkcs8", parent.privateKey.export({ type: "pkcs8", format: "der" }), EC_P256, false, ["sign"]),
    extensions: [
      ...caExtensions(trustDomain, 0),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ...(parentSki ? [new x509.AuthorityKeyIdentifierExtension(parentSki.keyId)] : []),
    ],
  });
  return toResult(cert, keys.privateKey);
}

export interface TlsServerCertificateInput {
  trustDomain: string;
  spiffeId: string;
  dnsNames: string[];
  ipAddresses: string[];
  publicKey: KeyObject;
  issuer: { cert: X509Certificate; privateKey: KeyObject };
  notBefore: Date;
  notAfter: Date;
}

/**
 * The control plane's own certificate: an X509-SVID (one URI SAN) that also names
 * the DNS names and addresses clients dial, so ordinary hostname checks pass.
 */
export async function generateServerCertificate(input: TlsServerCertificateInput): Promise<Buffer> {
  const issuerCert = new x509.X509Certificate(input.issuer.cert.raw);
  const issuerSki = issuerCert.getExtension(x509.SubjectKeyIdentifierExtension);
  const publicKey = await webcrypto.subtle.importKey("spki", input.publicKey.export({ type: "spki", format: "der" }), EC_P256, true, ["verify"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial().toString("hex"),
    subject: [{ O: ["Mandate"] }, { CN: ["Mandate control plane"] }],
    issuer: issuerCert.subject,
    notBefore: input.notBefore,
    notAfter: new Date(Math.min(input.notAfter.getTime(), new Date(input.issuer.cert.validTo).getTime())),
    signingAlgorithm: EC_P256,
    publicKey,
    signingKey: await webcrypto.subtle.importKey("pkcs8", input.issuer.privateKey.export({ type: "pkcs8", format: "der" }), EC_P256, false, ["sign"]),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      await x509.SubjectKeyIdentifierExtension.create(publicKey),
      ...(issuerSki ? [new x509.AuthorityKeyIdentifierExtension(issuerSki.keyId)] : []),
      new x509.SubjectAlternativeNameExtension([
        { type: "url", value: input.spiffeId },
        ...input.dnsNames.map((value) => ({ type: "dns" as const, value })),
        ...input.ipAddresses.map((value) => ({ type: "ip" as const, value })),
      ]),
    ],
  });
  return Buffer.from(cert.rawData);
}
