import "reflect-metadata";
import { KeyObject, webcrypto } from "node:crypto";
import { EC_P256, pemEncode, x509 } from "../identity/x509-util.js";

/**
 * The agent's key pair is made here, on the agent's host, and only a CSR leaves it:
 * the control plane never sees the private key.
 */
export async function generateKeyAndCsr(): Promise<{ privateKey: KeyObject; keyPem: string; csrPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({ name: "CN=mandate-agent", keys, signingAlgorithm: EC_P256 });
  const privateKey = KeyObject.from(keys.privateKey);
  return {
    privateKey,
    keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    csrPem: pemEncode("CERTIFICATE REQUEST", new Uint8Array(csr.rawData)),
  };
}
