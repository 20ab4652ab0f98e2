import { type KeyObject, generateKeyPair, sign } from "node:crypto";
import { promisify } from "node:util";
import { bitString, contextConstructed, integer, oid, sequence, set, utf8String } from "../identity/der/writer.js";
import { pemEncode } from "../identity/x509-util.js";

const generateEcKeyPair = promisify(generateKeyPair);

const ECDSA_WITH_SHA256 = sequence(oid("1.2.840.10045.4.3.2"));
// The server takes the identity from the credential, never from the request; the subject only says what made it.
const SUBJECT = sequence(set(sequence(oid("2.5.4.3"), utf8String("mandate-agent"))));
const VERSION_1 = integer(0);
const NO_ATTRIBUTES = contextConstructed(0);

/** A PKCS#10 request for `spkiDer`, signed by `privateKey` (P-256, ECDSA with SHA-256). */
export function buildCsrDer(privateKey: KeyObject, spkiDer: Buffer): Buffer {
  const info = sequence(VERSION_1, SUBJECT, spkiDer, NO_ATTRIBUTES);
  return sequence(info, ECDSA_WITH_SHA256, bitString(sign("sha256", info, privateKey)));
}

/**
 * The agent's key pair is made here, on the agent's host, and only a CSR leaves it:
 * the control plane never sees the private key.
 */
export async function generateKeyAndCsr(): Promise<{ privateKey: KeyObject; keyPem: string; csrPem: string; csrDer: Buffer }> {
  const { privateKey, publicKey } = await generateEcKeyPair("ec", { namedCurve: "P-256" });
  const csrDer = buildCsrDer(privateKey, publicKey.export({ type: "spki", format: "der" }));
  return {
    privateKey,
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    csrPem: pemEncode("CERTIFICATE REQUEST", csrDer),
    csrDer,
  };
}
