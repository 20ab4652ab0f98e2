import "reflect-metadata";
import { type KeyObject, X509Certificate, createHash, randomBytes, webcrypto } from "node:crypto";
import * as x509 from "@peculiar/x509";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };

export const EC_P256 = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;

export function pemEncode(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der).toString("base64");
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** Splits a PEM text into its DER blocks of one label, in order. */
export function pemDecodeAll(text: string, label = "CERTIFICATE"): Buffer[] {
  const out: Buffer[] = [];
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, "g");
  for (const match of text.matchAll(re)) out.push(Buffer.from(match[1]!.replace(/\s+/g, ""), "base64"));
  return out;
}

export function certToPem(der: Uint8Array): string {
  return pemEncode("CERTIFICATE", der);
}

/**
 * 128 random bits as the content octets of a positive DER INTEGER: a leading 0x00
 * is added when the top bit is set (so no randomness is given up to keep the sign),
 * and leading zero bytes are trimmed (DER forbids them).
 */
export function randomSerial(): Buffer {
  let serial = randomBytes(16);
  while (serial.length > 1 && serial[0] === 0 && serial[1]! < 0x80) serial = serial.subarray(1);
  return serial[0]! >= 0x80 ? Buffer.concat([Buffer.from([0]), serial]) : serial;
}

/** The pin a join token carries: SHA-256 of the root's SubjectPublicKeyInfo, as kubeadm pins its CA. */
export function caPinOf(cert: X509Certificate): string {
  const spki = cert.publicKey.export({ type: "spki", format: "der" });
  return `sha256:${createHash("sha256").update(spki).digest("hex")}`;
}

export function keyToPem(key: KeyObject): string {
  return key.export({ type: "pkcs8", format: "pem" }).toString();
}

/** The canonical hex of a serial: its INTEGER content without the sign byte, as `inspectCertificate` reports it. */
export function serialToHex(serial: Buffer): string {
  return (serial.length > 1 && serial[0] === 0 ? serial.subarray(1) : serial).toString("hex");
}
