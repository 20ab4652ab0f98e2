import { type KeyObject, verify } from "node:crypto";
import { MandateError, isMandateError } from "../errors/index.js";
import type { SignatureVerifierPool } from "./signature-pool.js";
import { DerReader, TAG } from "./der/reader.js";
import { readGeneralNames } from "./general-names.js";
import { type KeyAlgorithm, importPublicKey, publicKeyObject, readSubjectPublicKey } from "./spki.js";

export type CsrKeyAlgorithm = KeyAlgorithm;

export interface ParsedCsr {
  der: Buffer;
  certificationRequestInfoDer: Buffer;
  /** The key's canonical SubjectPublicKeyInfo DER, as a certificate will carry it. */
  spkiDer: Buffer;
  /** Decoded on first access: issuance never needs it, and decoding costs ~100µs. */
  readonly publicKey: KeyObject;
  keyAlgorithm: CsrKeyAlgorithm;
  rsaModulusBits?: number;
  signatureAlgorithmOid: string;
  signature: Buffer;
  subjectDer: Buffer;
  uriSans: string[];
  dnsSans: string[];
  ipSans: string[];
  emailSans: string[];
  /** SAN entries of other forms (otherName, directoryName…), by tag. */
  otherSanTags: number[];
  /** Requested extensions other than subjectAltName, by OID. */
  otherRequestedExtensionOids: string[];
  /** The request carries basicConstraints with cA TRUE. */
  requestsCa: boolean;
}

export const MAX_CSR_BYTES = 16 * 1024;
const OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
const OID_SAN = "2.5.29.17";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";

interface SignatureAlgorithm {
  name: string;
  hash: string | null;
  keys: readonly CsrKeyAlgorithm[];
  /** RSA PKCS#1 v1.5 AlgorithmIdentifiers carry NULL parameters (or, from some encoders, none); the others none. */
  nullParameters: boolean;
}

const EC = ["ec-p256", "ec-p384"] as const;
const SIGNATURE_ALGORITHMS: Record<string, SignatureAlgorithm> = {
  "1.2.840.10045.4.3.2": { name: "ecdsa-with-SHA256", hash: "sha256", keys: EC, nullParameters: false },
  "1.2.840.10045.4.3.3": { name: "ecdsa-with-SHA384", hash: "sha384", keys: EC, nullParameters: false },
  "1.2.840.10045.4.3.4": { name: "ecdsa-with-SHA512", hash: "sha512", keys: EC, nullParameters: false },
  "1.2.840.113549.1.1.11": { name: "sha256WithRSAEncryption", hash: "sha256", keys: ["rsa"], nullParameters: true },
  "1.2.840.113549.1.1.12": { name: "sha384WithRSAEncryption", hash: "sha384", keys: ["rsa"], nullParameters: true },
  "1.2.840.113549.1.1.13": { name: "sha512WithRSAEncryption", hash: "sha512", keys: ["rsa"], nullParameters: true },
  "1.3.101.112": { name: "Ed25519", hash: null, keys: ["ed25519"], nullParameters: false },
};

function invalid(reason: string): MandateError {
  return new MandateError("INVALID_CSR", `invalid CSR: ${reason}`);
}

const PEM = /^\s*-----BEGIN (NEW )?CERTIFICATE REQUEST-----\r?\n([A-Za-z0-9+/=\r\n\t ]+)-----END (NEW )?CERTIFICATE REQUEST-----\s*$/;

function toDer(input: string | Uint8Array): Buffer {
  // A copy, so a caller reusing its buffer cannot change the request between parsing and verification.
  if (typeof input !== "string") return Buffer.from(input);
  const match = PEM.exec(input);
  if (!match || match[1] !== match[3]) throw invalid("expected exactly one PEM block labelled CERTIFICATE REQUEST");
  const base64 = match[2]!.replace(/\s+/g, "");
  const der = Buffer.from(base64, "base64");
  // Node's decoder skips what it cannot read; a round trip keeps two texts from meaning one request.
  if (der.toString("base64") !== base64) throw invalid("PEM body is not canonical base64");
  return der;
}

/**
 * Parses a PKCS#10 request (PEM or DER) strictly and applies the key policy; the
 * self-signature is checked by `verifyCsr`, off the main thread.
 */
export function parseCsr(input: string | Uint8Array): ParsedCsr {
  if (typeof input !== "string" && !(input instanceof Uint8Array)) throw invalid("expected PEM text or DER bytes");
  const size = typeof input === "string" ? input.length : input.byteLength;
  if (size > MAX_CSR_BYTES) throw invalid(`larger than ${MAX_CSR_BYTES} bytes`);
  const der = toDer(input);
  if (der.length === 0) throw invalid("empty");
  try {
    return parseCsrDer(der);
  } catch (error) {
    if (isMandateError(error, "INVALID_CSR") || isMandateError(error, "CSR_KEY_REJECTED")) throw error;
    throw invalid((error as Error).message);
  }
}

function parseCsrDer(der: Buffer): ParsedCsr {
  const outer = new DerReader(der, "INVALID_CSR", "CSR");
  const request = outer.enter(TAG.SEQUENCE);
  outer.end();
  const infoElement = request.read(TAG.SEQUENCE);
  const algorithm = request.enter(TAG.SEQUENCE);
  const signatureAlgorithmOid = algorithm.readOid();
  const algorithmParameters = algorithm.done ? undefined : algorithm.read();
  algorithm.end();
  const signature = request.readBitString().bits;
  request.end();
  checkAlgorithmParameters(signatureAlgorithmOid, algorithmParameters?.bytes, request);

  const info = request.child(infoElement);
  if (info.readSmallInteger() !== 0) throw invalid("unsupported version (PKCS#10 defines only v1, encoded 0)");
  const subject = info.read(TAG.SEQUENCE);
  const spki = info.read(TAG.SEQUENCE);
  // PKCS#10 makes the attributes field mandatory, but some encoders omit it when empty.
  const attributes = info.readOptional(0xa0);
  info.end();
  const key = readSubjectPublicKey(spki.bytes, "INVALID_CSR");

  const fields: Omit<ParsedCsr, "publicKey"> = {
    der,
    certificationRequestInfoDer: infoElement.bytes,
    spkiDer: key.spkiDer,
    keyAlgorithm: key.keyAlgorithm,
    ...(key.rsaModulusBits === undefined ? {} : { rsaModulusBits: key.rsaModulusBits }),
    signatureAlgorithmOid,
    signature,
    subjectDer: subject.bytes,
    uriSans: [],
    dnsSans: [],
    ipSans: [],
    emailSans: [],
    otherSanTags: [],
    otherRequestedExtensionOids: [],
    requestsCa: false,
  };
  let publicKey: KeyObject | undefined;
  // Enumerable, so spreading a ParsedCsr copies the key like any other field.
  const parsed = Object.defineProperty(fields, "publicKey", { enumerable: true, get: () => (publicKey ??= publicKeyObject(key)) }) as ParsedCsr;
  if (attributes) readAttributes(info.child(attributes), parsed);
  return parsed;
}

function checkAlgorithmParameters(oid: string, parameters: Buffer | undefined, reader: DerReader): void {
  const algorithm = SIGNATURE_ALGORITHMS[oid];
  if (parameters === undefined) return;
  if (algorithm?.nullParameters && parameters.length === 2 && parameters[0] === TAG.NULL && parameters[1] === 0) return;
  // Unknown algorithms are refused by verifyCsr with a clearer message; only known ones are held to their parameter rules here.
  if (algorithm) throw reader.error(`${algorithm.name} takes no parameters of this form`);
}

function readAttributes(attributes: DerReader, parsed: ParsedCsr): void {
  let sawExtensionRequest = false;
  while (!attributes.done) {
    const attribute = attributes.enter(TAG.SEQUENCE);
    const type = attribute.readOid();
    const values = attribute.enter(TAG.SET);
    attribute.end();
    if (type !== OID_EXTENSION_REQUEST) continue;
    // One extensionRequest with one value: a second place to hide requested names would escape the checks below.
    if (sawExtensionRequest) throw invalid("more than one extensionRequest attribute");
    sawExtensionRequest = true;
    const extensions = values.enter(TAG.SEQUENCE);
    values.end();
    readRequestedExtensions(extensions, parsed);
  }
}

function readRequestedExtensions(extensions: DerReader, parsed: ParsedCsr): void {
  const seen = new Set<string>();
  while (!extensions.done) {
    const extension = extensions.enter(TAG.SEQUENCE);
    const id = extension.readOid();
    if (extension.peekTag() === TAG.BOOLEAN) extension.readBoolean();
    const value = extension.wrapped(extension.read(TAG.OCTET_STRING));
    extension.end();
    if (seen.has(id)) throw invalid(`extension ${id} is requested twice`);
    seen.add(id);
    if (id === OID_SAN) {
      const names = readGeneralNames(value);
      parsed.uriSans.push(...names.uris);
      parsed.dnsSans.push(...names.dnsNames);
      parsed.ipSans.push(...names.ips);
      parsed.emailSans.push(...names.emails);
      parsed.otherSanTags.push(...names.others);
      continue;
    }
    if (id === OID_BASIC_CONSTRAINTS) {
      const bc = value.enter(TAG.SEQUENCE);
      parsed.requestsCa = bc.peekTag() === TAG.BOOLEAN && bc.readBoolean();
    }
    parsed.otherRequestedExtensionOids.push(id);
  }
}

/**
 * Proof of possession: the signature algorithm must fit the key, and the request must
 * verify under its own key. Verification runs on the libuv threadpool.
 */
export async function verifyCsr(csr: ParsedCsr, pool?: SignatureVerifierPool): Promise<void> {
  // The key is read again from the SPKI the certificate will carry, so what verifies is exactly what gets certified,
  // and a ParsedCsr assembled elsewhere cannot smuggle in a key the policy refuses.
  const key = readSubjectPublicKey(csr.spkiDer, "INVALID_CSR");
  if (key.keyAlgorithm !== csr.keyAlgorithm) throw invalid(`key is ${key.keyAlgorithm}, not ${csr.keyAlgorithm}`);
  const algorithm = SIGNATURE_ALGORITHMS[csr.signatureAlgorithmOid];
  if (!algorithm) throw invalid(`signature algorithm ${csr.signatureAlgorithmOid} is not accepted`);
  if (!algorithm.keys.includes(csr.keyAlgorithm)) throw invalid(`signature algorithm ${algorithm.name} does not fit a ${csr.keyAlgorithm} key`);
  const ok = pool
    ? await pool.verify(algorithm.hash, key.spkiDer, csr.certificationRequestInfoDer, csr.signature)
    : await importPublicKey(key).then(
        (publicKey) =>
          new Promise<boolean>((resolve) => {
            verify(algorithm.hash, csr.certificationRequestInfoDer, publicKey, csr.signature, (error, result) => resolve(!error && result));
          }),
      );
  if (!ok) throw invalid("signature does not verify with the CSR's own key (proof of possession failed)");
}

/**
 * The identity comes from the server, never from the CSR: a CSR may ask for nothing,
 * or for exactly the caller's own SPIFFE ID, and nothing else.
 */
export function assertCsrRequestsOnly(csr: ParsedCsr, spiffeId: string): void {
  const asked: string[] = [];
  const uris = csr.uriSans;
  if (uris.length > 1) asked.push(`${uris.length} URI SANs (${uris.map((u) => JSON.stringify(u)).join(", ")})`);
  else if (uris.length === 1 && uris[0] !== spiffeId) asked.push(`URI SAN ${JSON.stringify(uris[0])}`);
  if (csr.dnsSans.length) asked.push(`DNS SANs ${csr.dnsSans.map((n) => JSON.stringify(n)).join(", ")}`);
  if (csr.ipSans.length) asked.push(`IP SANs ${csr.ipSans.join(", ")}`);
  if (csr.emailSans.length) asked.push(`email SANs ${csr.emailSans.map((n) => JSON.stringify(n)).join(", ")}`);
  if (csr.otherSanTags.length) asked.push(`${csr.otherSanTags.length} SAN(s) of other forms`);
  if (csr.requestsCa) asked.push("a CA certificate (basicConstraints cA=TRUE)");
  if (asked.length) {
    throw new MandateError("CSR_IDENTITY_MISMATCH", `the CSR asks for ${asked.join("; ")}, but this identity is ${spiffeId}; send a CSR without SANs`);
  }
}
