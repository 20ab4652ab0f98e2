import { type KeyObject, createPublicKey, verify } from "node:crypto";
import { MandateError, isMandateError } from "../errors/index.js";
import { DerReader, TAG, decodeOid } from "./der/reader.js";
import { readGeneralNames } from "./general-names.js";

export type CsrKeyAlgorithm = "ec-p256" | "ec-p384" | "ed25519" | "rsa";

export interface ParsedCsr {
  der: Buffer;
  certificationRequestInfoDer: Buffer;
  spkiDer: Buffer;
  publicKey: KeyObject;
  keyAlgorithm: CsrKeyAlgorithm;
  rsaModulusBits?: number;
  signatureAlgorithmOid: string;
  signature: Buffer;
  subjectDer: Buffer;
  uriSans: string[];
  dnsSans: string[];
  ipSans: string[];
  emailSans: string[];
  otherSanTags: number[];
  /** Requested extensions other than subjectAltName, by OID. */
  otherRequestedExtensionOids: string[];
  requestsCa: boolean;
}

export const MAX_CSR_BYTES = 16 * 1024;
const OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14";
const OID_SAN = "2.5.29.17";
const OID_BASIC_CONSTRAINTS = "2.5.29.19";
const MIN_RSA_BITS = 2048;

/** Signature algorithms accepted on CSRs, with the hash and the key type each needs. */
const SIGNATURE_ALGORITHMS: Record<string, { hash: string | null; keys: CsrKeyAlgorithm[] }> = {
  "1.2.840.10045.4.3.2": { hash: "sha256", keys: ["ec-p256", "ec-p384"] },
  "1.2.840.10045.4.3.3": { hash: "sha384", keys: ["ec-p256", "ec-p384"] },
  "1.2.840.10045.4.3.4": { hash: "sha512", keys: ["ec-p256", "ec-p384"] },
  "1.2.840.113549.1.1.11": { hash: "sha256", keys: ["rsa"] },
  "1.2.840.113549.1.1.12": { hash: "sha384", keys: ["rsa"] },
  "1.2.840.113549.1.1.13": { hash: "sha512", keys: ["rsa"] },
  "1.3.101.112": { hash: null, keys: ["ed25519"] },
};

function invalid(reason: string): MandateError {
  return new MandateError("INVALID_CSR", `invalid CSR: ${reason}`);
}

function toDer(input: string | Uint8Array): Buffer {
  if (typeof input !== "string") return Buffer.from(input);
  const match = /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]*)-----END (?:NEW )?CERTIFICATE REQUEST-----/.exec(input);
  if (!match) throw invalid("expected a PEM CERTIFICATE REQUEST");
  return Buffer.from(match[1]!.replace(/\s+/g, ""), "base64");
}

/** Parses a PKCS#10 request (PEM or DER) strictly. The signature is checked by `verifyCsr`. */
export function parseCsr(input: string | Uint8Array): ParsedCsr {
  if (input === undefined || input === null || (typeof input !== "string" && !(input instanceof Uint8Array))) throw invalid("missing");
  if ((typeof input === "string" ? Buffer.byteLength(input) : input.length) > MAX_CSR_BYTES * 2) throw invalid(`larger than ${MAX_CSR_BYTES} bytes`);
  const der = toDer(input);
  if (der.length === 0) throw invalid("empty");
  if (der.length > MAX_CSR_BYTES) throw invalid(`larger than ${MAX_CSR_BYTES} bytes`);
  try {
    return parseCsrDer(der);
  } catch (error) {
    if (isMandateError(error) && error.code !== "MALFORMED_REQUEST") throw error;
    throw invalid((error as Error).message);
  }
}

function parseCsrDer(der: Buffer): ParsedCsr {
  const outer = new DerReader(der, "INVALID_CSR", "CSR");
  const request = outer.enter(TAG.SEQUENCE);
  outer.end();
  const infoElement = request.read(TAG.SEQUENCE);
  const algorithm = request.enter(TAG.SEQUENCE);
  const signatureAlgorithmOid = decodeOid(algorithm.read(TAG.OID).value);
  const signatureBits = request.read(TAG.BIT_STRING).value;
  request.end();
  if (signatureBits.length < 2 || signatureBits[0] !== 0) throw invalid("bad signature bit string");

  const info = request.child(infoElement);
  const version = info.read(TAG.INTEGER).value;
  if (version.length !== 1 || version[0] !== 0) throw invalid("unsupported version");
  const subject = info.read(TAG.SEQUENCE);
  const spki = info.read(TAG.SEQUENCE);
  const attributes = info.readOptional(0xa0);
  info.end();

  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: spki.bytes, format: "der", type: "spki" });
  } catch {
    throw invalid("unreadable public key");
  }
  const { keyAlgorithm, rsaModulusBits } = classifyKey(publicKey);

  const parsed: ParsedCsr = {
    der,
    certificationRequestInfoDer: infoElement.bytes,
    spkiDer: spki.bytes,
    publicKey,
    keyAlgorithm,
    ...(rsaModulusBits ? { rsaModulusBits } : {}),
    signatureAlgorithmOid,
    signature: signatureBits.subarray(1),
    subjectDer: subject.bytes,
    uriSans: [],
    dnsSans: [],
    ipSans: [],
    emailSans: [],
    otherSanTags: [],
    otherRequestedExtensionOids: [],
    requestsCa: false,
  };
  if (attributes) readAttributes(info.child(attributes), parsed);
  return parsed;
}

function classifyKey(key: KeyObject): { keyAlgorithm: CsrKeyAlgorithm | "unsupported"; rsaModulusBits?: number } & { keyAlgorithm: CsrKeyAlgorithm } {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === "ec") {
    if (details.namedCurve === "prime256v1") return { keyAlgorithm: "ec-p256" };
    if (details.namedCurve === "secp384r1") return { keyAlgorithm: "ec-p384" };
    throw new MandateError("CSR_KEY_REJECTED", `CSR key uses curve ${details.namedCurve ?? "unknown"}; use P-256 or P-384`);
  }
  if (type === "ed25519") return { keyAlgorithm: "ed25519" };
  if (type === "rsa") {
    const bits = details.modulusLength ?? 0;
    if (bits < MIN_RSA_BITS) throw new MandateError("CSR_KEY_REJECTED", `CSR key is RSA-${bits}; RSA keys must have at least ${MIN_RSA_BITS} bits`);
    return { keyAlgorithm: "rsa", rsaModulusBits: bits };
  }
  throw new MandateError("CSR_KEY_REJECTED", `CSR key type ${type ?? "unknown"} is not accepted; use ECDSA P-256/P-384, Ed25519 or RSA-2048+`);
}

function readAttributes(attributes: DerReader, parsed: ParsedCsr): void {
  while (!attributes.done) {
    const attribute = attributes.enter(TAG.SEQUENCE);
    const type = decodeOid(attribute.read(TAG.OID).value);
    const values = attribute.enter(TAG.SET);
    attribute.end();
    if (type !== OID_EXTENSION_REQUEST) continue;
    const extensions = values.enter(TAG.SEQUENCE);
    while (!extensions.done) {
      const extension = extensions.enter(TAG.SEQUENCE);
      const extnId = decodeOid(extension.read(TAG.OID).value);
      extension.readOptional(TAG.BOOLEAN);
      const value = extension.read(TAG.OCTET_STRING);
      extension.end();
      if (extnId === OID_SAN) {
        const names = readGeneralNames(extension.child(value));
        parsed.uriSans.push(...names.uris);
        parsed.dnsSans.push(...names.dnsNames);
        parsed.ipSans.push(...names.ips);
        parsed.emailSans.push(...names.emails);
        parsed.otherSanTags.push(...names.others);
      } else {
        if (extnId === OID_BASIC_CONSTRAINTS) {
          const bc = extension.child(value).enter(TAG.SEQUENCE);
          const ca = bc.readOptional(TAG.BOOLEAN);
          parsed.requestsCa = ca?.value[0] === 0xff;
        }
        parsed.otherRequestedExtensionOids.push(extnId);
      }
    }
  }
}

/** Checks the signature algorithm fits the key and the self-signature verifies (on the threadpool). */
export async function verifyCsr(csr: ParsedCsr): Promise<void> {
  const algorithm = SIGNATURE_ALGORITHMS[csr.signatureAlgorithmOid];
  if (!algorithm) throw new MandateError("INVALID_CSR", `invalid CSR: signature algorithm ${csr.signatureAlgorithmOid} is not accepted`);
  if (!algorithm.keys.includes(csr.keyAlgorithm)) {
    throw new MandateError("INVALID_CSR", `invalid CSR: signature algorithm ${csr.signatureAlgorithmOid} does not fit a ${csr.keyAlgorithm} key`);
  }
  const ok = await new Promise<boolean>((resolve) => {
    verify(algorithm.hash, csr.certificationRequestInfoDer, csr.publicKey, csr.signature, (error, result) => resolve(!error && result));
  });
  if (!ok) throw new MandateError("INVALID_CSR", "invalid CSR: signature does not verify with the CSR's own key (proof of possession failed)");
}

/**
 * The identity comes from the server, never from the CSR: a CSR may ask for nothing,
 * or for exactly the caller's own SPIFFE ID, and nothing else.
 */
export function assertCsrRequestsOnly(csr: ParsedCsr, spiffeId: string): void {
  const extra: string[] = [];
  const uris = csr.uriSans;
  if (uris.length > 1) extra.push(`${uris.length} URI SANs`);
  else if (uris.length === 1 && uris[0] !== spiffeId) extra.push(`URI SAN ${JSON.stringify(uris[0])}`);
  if (csr.dnsSans.length) extra.push(`DNS SANs ${csr.dnsSans.join(", ")}`);
  if (csr.ipSans.length) extra.push(`IP SANs ${csr.ipSans.join(", ")}`);
  if (csr.emailSans.length) extra.push(`email SANs ${csr.emailSans.join(", ")}`);
  if (csr.otherSanTags.length) extra.push("other SAN forms");
  if (csr.requestsCa) extra.push("a CA certificate");
  if (extra.length) {
    throw new MandateError("CSR_IDENTITY_MISMATCH", `the CSR asks for ${extra.join("; ")}, but this identity is ${spiffeId}; send a CSR without SANs`);
  }
}
