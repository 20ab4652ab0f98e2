import { type KeyObject, createHash, sign } from "node:crypto";
import { MandateError } from "../errors/index.js";
import { type SpiffeId, parseSpiffeId } from "./spiffe-id.js";
import { type KeyAlgorithm, readSubjectPublicKey } from "./spki.js";
import { type InspectedCertificate, inspectCertificate } from "./x509-inspect.js";

/**
 * A renewal proof: a compact JWS (ES256 only) made with the private key of the agent's
 * *current* X509-SVID, which travels in the protected header (`x5c`, leaf only). It lets an
 * agent renew over any TLS connection, kept alive across renewals, instead of opening a
 * new mTLS connection with every new certificate. The claims bind the proof to one
 * new CSR, one presented certificate, one instance generation (the nonce the server
 * advances with a compare-and-set) and this control plane, for a short time.
 */
export const RENEWAL_PROOF_TYPE = "mandate-renewal+jwt";
/** Seconds `iat` may differ from the server's clock, either way. */
export const RENEWAL_PROOF_WINDOW_SECONDS = 60;
export const MAX_RENEWAL_PROOF_BYTES = 8192;

export interface RenewalProofClaims {
  /** The control plane's SPIFFE ID (`spiffe://<td>/mandate/server`). */
  aud: string;
  /** The presented SVID's SPIFFE ID. */
  sub: string;
  /** Seconds since the epoch. */
  iat: number;
  instance: string;
  /** The generation the presented SVID carries: the instance's current one for an honest agent. */
  generation: number;
  /** The presented certificate's serial, lowercase hex without a sign octet. */
  serial: string;
  /** base64url SHA-256 of the new CSR's DER. */
  csr: string;
}

export interface ParsedRenewalProof {
  claims: RenewalProofClaims;
  /** The presented leaf certificate (DER), from `x5c[0]`. */
  leafDer: Buffer;
  /** `header.payload`, the bytes the signature covers. */
  signingInput: Buffer;
  /** r‖s, 64 bytes (JWS's ECDSA form, IEEE P1363). */
  signature: Buffer;
}

const HEADER_KEYS = ["alg", "typ", "x5c"];
const CLAIM_KEYS = ["aud", "sub", "iat", "instance", "generation", "serial", "csr"];
const SERIAL = /^[0-9a-f]{1,42}$/;
const INSTANCE = /^[A-Za-z0-9._-]{1,128}$/;

function invalid(reason: string): MandateError {
  return new MandateError("PROOF_INVALID", `renewal proof rejected: ${reason}`);
}

export function csrDigest(csrDer: Uint8Array): string {
  return createHash("sha256").update(csrDer).digest("base64url");
}

/** Signs a proof with the current SVID's key (P-256). */
export function signRenewalProof(privateKey: KeyObject, leafDer: Uint8Array, claims: RenewalProofClaims): string {
  const header = Buffer.from(JSON.stringify({ alg: "ES256", typ: RENEWAL_PROOF_TYPE, x5c: [Buffer.from(leafDer).toString("base64")] })).toString("base64url");
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const signingInput = `${header}.${payload}`;
  const signature = sign("sha256", Buffer.from(signingInput), { key: privateKey, dsaEncoding: "ieee-p1363" });
  return `${signingInput}.${signature.toString("base64url")}`;
}

/**
 * Strict base64url: exactly the canonical encoding of what it decodes to. Node's decoder
 * skips what it cannot read and accepts both alphabets and padding; the round trip
 * refuses all of that (no second text may mean the same bytes).
 */
function base64url(part: string, what: string): Buffer {
  const bytes = Buffer.from(part, "base64url");
  if (bytes.toString("base64url") !== part) throw invalid(`${what} is not canonical base64url`);
  return bytes;
}

function jsonObject(bytes: Buffer, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw invalid(`${what} is not JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalid(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/** Exactly these members: an unknown header member could be `crit`, an unknown claim a meaning we do not enforce. */
function exactKeys(object: Record<string, unknown>, keys: string[], what: string): void {
  const present = Object.keys(object);
  const extra = present.filter((k) => !keys.includes(k));
  if (extra.length) throw invalid(`${what} has unexpected member(s) ${extra.map((k) => JSON.stringify(k)).join(", ")}`);
  const missing = keys.filter((k) => !present.includes(k));
  if (missing.length) throw invalid(`${what} lacks ${missing.join(", ")}`);
}

function boundedString(value: unknown, name: string, max: number): string {
  if (typeof value !== "string" || value.length === 0 || value.length > max) throw invalid(`${name} must be a non-empty string of at most ${max} characters`);
  return value;
}

/**
 * Parses a compact renewal proof without verifying it. Anything but exactly the shape
 * `signRenewalProof` makes is PROOF_INVALID; the algorithm is pinned here, never read
 * from the token and obeyed.
 */
export function parseRenewalProof(input: unknown): ParsedRenewalProof {
  if (typeof input !== "string") throw invalid("expected a compact JWS string");
  if (input.length > MAX_RENEWAL_PROOF_BYTES) throw invalid(`larger than ${MAX_RENEWAL_PROOF_BYTES} bytes`);
  const parts = input.split(".");
  if (parts.length !== 3) throw invalid("a compact JWS has three dot-separated parts");
  const [headerPart, payloadPart, signaturePart] = parts as [string, string, string];
  const header = jsonObject(base64url(headerPart, "header"), "header");
  exactKeys(header, HEADER_KEYS, "header");
  if (header.alg !== "ES256") throw invalid(`alg ${JSON.stringify(header.alg)} is not accepted; only ES256`);
  if (header.typ !== RENEWAL_PROOF_TYPE) throw invalid(`typ must be ${RENEWAL_PROOF_TYPE}`);
  const x5c = header.x5c;
  if (!Array.isArray(x5c) || x5c.length !== 1 || typeof x5c[0] !== "string") throw invalid("x5c must hold exactly the presented leaf certificate");
  const leafText = x5c[0];
  // Standard base64 with padding (RFC 7515 §4.1.6), canonical by the same round trip.
  const leafDer = Buffer.from(leafText, "base64");
  if (leafText.length === 0 || leafDer.toString("base64") !== leafText) throw invalid("x5c[0] is not canonical base64");

  const claims = jsonObject(base64url(payloadPart, "payload"), "payload");
  exactKeys(claims, CLAIM_KEYS, "payload");
  const aud = boundedString(claims.aud, "aud", 2048);
  const sub = boundedString(claims.sub, "sub", 2048);
  if (typeof claims.iat !== "number" || !Number.isSafeInteger(claims.iat) || claims.iat < 0) throw invalid("iat must be a non-negative integer (seconds)");
  const instance = boundedString(claims.instance, "instance", 128);
  if (!INSTANCE.test(instance)) throw invalid("instance is not an instance id");
  if (typeof claims.generation !== "number" || !Number.isSafeInteger(claims.generation) || claims.generation < 1) throw invalid("generation must be a positive integer");
  const serial = boundedString(claims.serial, "serial", 42);
  if (!SERIAL.test(serial)) throw invalid("serial must be lowercase hex");
  const csr = boundedString(claims.csr, "csr", 43);
  if (base64url(csr, "csr digest").length !== 32) throw invalid("csr must be a base64url SHA-256 digest");

  const signature = base64url(signaturePart, "signature");
  if (signature.length !== 64) throw invalid("an ES256 signature is 64 bytes");
  return {
    claims: { aud, sub, iat: claims.iat, instance, generation: claims.generation, serial, csr },
    leafDer,
    signingInput: Buffer.from(`${headerPart}.${payloadPart}`, "ascii"),
    signature,
  };
}

/** SHA-256 of the whole proof: what the instance remembers so the same proof is never accepted twice. */
export function proofDigest(proof: string): string {
  return createHash("sha256").update(proof).digest("hex");
}

export interface PresentedLeaf {
  spiffeId: SpiffeId;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  spkiDer: Buffer;
  keyAlgorithm: KeyAlgorithm;
}

/**
 * Reads the leaf a proof presents, with the SPIFFE leaf rules the TLS path applies
 * (one URI SAN with a path, not a CA). Whether this trust domain issued it is for the
 * caller to establish; a malformed leaf is PROOF_INVALID.
 */
export function inspectPresentedLeaf(der: Buffer): PresentedLeaf {
  let info: InspectedCertificate;
  try {
    info = inspectCertificate(der);
  } catch (error) {
    throw invalid(`the presented certificate is malformed (${(error as Error).message})`);
  }
  if (info.uriSans.length !== 1) throw invalid(`the presented certificate has ${info.uriSans.length} URI SANs; an X509-SVID has exactly one`);
  let spiffeId: SpiffeId;
  try {
    spiffeId = parseSpiffeId(info.uriSans[0]!);
  } catch (error) {
    throw invalid(`the presented certificate's URI SAN is not a SPIFFE ID (${(error as Error).message})`);
  }
  if (spiffeId.path === "" || info.isCa || info.unknownCriticalExtensions.length) throw invalid("the presented certificate is not an X509-SVID leaf");
  let key: ReturnType<typeof readSubjectPublicKey>;
  try {
    key = readSubjectPublicKey(info.spkiDer, "PROOF_INVALID");
  } catch (error) {
    throw invalid(`the presented certificate's key is not accepted (${(error as Error).message})`);
  }
  return { spiffeId, serialHex: info.serialHex.toLowerCase(), notBefore: info.notBefore, notAfter: info.notAfter, spkiDer: key.spkiDer, keyAlgorithm: key.keyAlgorithm };
}
