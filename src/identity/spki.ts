import { type JsonWebKey, KeyObject, createPublicKey, webcrypto } from "node:crypto";
import { MandateError, type MandateErrorCode } from "../errors/index.js";
import { DerReader, TAG, decodeOid } from "./der/reader.js";
import { NULL, bitString, oid, sequence } from "./der/writer.js";

export type KeyAlgorithm = "ec-p256" | "ec-p384" | "ed25519" | "rsa";

/** A SubjectPublicKeyInfo read from DER and accepted by the key policy. */
export interface SubjectPublicKey {
  keyAlgorithm: KeyAlgorithm;
  /** Canonical DER: what a certificate for this key carries. */
  spkiDer: Buffer;
  rsaModulusBits?: number;
  material: { kind: "ec"; namedCurve: "P-256" | "P-384"; point: Buffer } | { kind: "jwk"; jwk: JsonWebKey };
}

const MIN_RSA_BITS = 2048;
// Verification cost grows with the modulus and the exponent; beyond these a key is a denial-of-service lever.
const MAX_RSA_BITS = 8192;
const MAX_RSA_EXPONENT = 2n ** 32n;

const OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1";
const OID_RSA = "1.2.840.113549.1.1.1";
const OID_ED25519 = "1.3.101.112";
const RSA_ALGORITHM = sequence(oid(OID_RSA), NULL);
const RSA_OID_LENGTH = oid(OID_RSA).length;
const ED25519_ALGORITHM = sequence(oid(OID_ED25519));
const CURVES: Record<string, { keyAlgorithm: KeyAlgorithm; namedCurve: "P-256" | "P-384"; pointBytes: number }> = {
  "1.2.840.10045.3.1.7": { keyAlgorithm: "ec-p256", namedCurve: "P-256", pointBytes: 65 },
  "1.3.132.0.34": { keyAlgorithm: "ec-p384", namedCurve: "P-384", pointBytes: 97 },
};
const CURVE_NAMES: Record<string, string> = {
  "1.3.132.0.10": "secp256k1",
  "1.3.132.0.33": "P-224",
  "1.3.132.0.35": "P-521",
  "1.3.36.3.3.2.8.1.1.7": "brainpoolP256r1",
  "1.3.36.3.3.2.8.1.1.11": "brainpoolP384r1",
};
const REFUSED_ALGORITHMS: Record<string, string> = {
  "1.2.840.10040.4.1": "DSA",
  "1.2.840.113549.1.1.10": "RSASSA-PSS-restricted RSA",
  "1.2.840.113549.1.3.1": "Diffie-Hellman",
  "1.2.840.10046.2.1": "Diffie-Hellman",
  "1.3.101.110": "X25519",
  "1.3.101.111": "X448",
  "1.3.101.113": "Ed448",
};
const ACCEPTED = "use ECDSA P-256/P-384, Ed25519 or RSA-2048+";

function refuse(reason: string): MandateError {
  return new MandateError("CSR_KEY_REJECTED", `CSR key ${reason}`);
}

/**
 * Reads a SubjectPublicKeyInfo strictly and applies the key policy, without asking
 * OpenSSL to decode it: its DER decoder costs ~100µs per key on the issuance hot path.
 * Malformed DER is reported with `errorCode`; a refused key is CSR_KEY_REJECTED.
 */
export function readSubjectPublicKey(spkiDer: Buffer, errorCode: MandateErrorCode): SubjectPublicKey {
  const reader = new DerReader(spkiDer, errorCode, "public key");
  const spki = reader.enter(TAG.SEQUENCE);
  reader.end();
  const algorithm = spki.read(TAG.SEQUENCE);
  const algorithmReader = spki.child(algorithm);
  const algorithmOid = algorithmReader.readOid();
  const parameters = algorithmReader.done ? undefined : algorithmReader.read();
  algorithmReader.end();
  const { bits } = spki.readBitString();
  spki.end();

  if (algorithmOid === OID_EC_PUBLIC_KEY) {
    if (parameters?.tag !== TAG.OID) throw refuse(`is an EC key with explicit or missing curve parameters; ${ACCEPTED}`);
    const curveOid = decodeOid(parameters.value, reader.errorCode);
    const curve = CURVES[curveOid];
    if (!curve) throw refuse(`uses curve ${CURVE_NAMES[curveOid] ?? curveOid}; use P-256 or P-384`);
    if (bits[0] === 0x02 || bits[0] === 0x03) throw refuse("is a compressed EC point; send the uncompressed form, which every verifier reads");
    if (bits.length !== curve.pointBytes || bits[0] !== 0x04) throw reader.error(`${curve.namedCurve} public key has the wrong length or form`);
    return { keyAlgorithm: curve.keyAlgorithm, spkiDer: spkiDer, material: { kind: "ec", namedCurve: curve.namedCurve, point: bits } };
  }
  if (algorithmOid === OID_ED25519) {
    if (!algorithm.bytes.equals(ED25519_ALGORITHM)) throw reader.error("Ed25519 key algorithm takes no parameters");
    if (bits.length !== 32) throw reader.error("Ed25519 public key is not 32 bytes");
    return { keyAlgorithm: "ed25519", spkiDer: spkiDer, material: { kind: "jwk", jwk: { kty: "OKP", crv: "Ed25519", x: bits.toString("base64url") } } };
  }
  if (algorithmOid === OID_RSA) return readRsaKey(spkiDer, algorithm.bytes, bits, errorCode);
  throw refuse(`type ${REFUSED_ALGORITHMS[algorithmOid] ?? algorithmOid} is not accepted; ${ACCEPTED}`);
}

function readRsaKey(spkiDer: Buffer, algorithm: Buffer, bits: Buffer, errorCode: MandateErrorCode): SubjectPublicKey {
  const reader = new DerReader(bits, errorCode, "RSA public key");
  // RFC 3279 asks for NULL parameters; some encoders omit them, so only that variant is re-encoded rather than refused.
  const absentParameters = algorithm.length === 2 + RSA_OID_LENGTH;
  if (!algorithm.equals(RSA_ALGORITHM) && !absentParameters) throw reader.error("RSA key algorithm parameters must be NULL");
  const rsaKey = reader.enter(TAG.SEQUENCE);
  reader.end();
  const modulus = rsaKey.readIntegerBytes();
  const exponent = rsaKey.readIntegerBytes();
  rsaKey.end();
  if (modulus[0]! & 0x80 || exponent[0]! & 0x80) throw reader.error("RSA key has a negative modulus or exponent");
  const n = modulus[0] === 0 ? modulus.subarray(1) : modulus;
  const bitsInModulus = n.length === 0 ? 0 : (n.length - 1) * 8 + (32 - Math.clz32(n[0]!));
  if (bitsInModulus < MIN_RSA_BITS) throw refuse(`is RSA-${bitsInModulus}; RSA keys must have at least ${MIN_RSA_BITS} bits`);
  if (bitsInModulus > MAX_RSA_BITS) throw refuse(`is RSA-${bitsInModulus}; RSA keys may have at most ${MAX_RSA_BITS} bits`);
  const e = BigInt(`0x${exponent.toString("hex")}`);
  if (e < 3n || e % 2n === 0n || e > MAX_RSA_EXPONENT) throw refuse(`has RSA public exponent ${e}; use an odd exponent from 3 to 2^32 (65537 is usual)`);
  return {
    keyAlgorithm: "rsa",
    spkiDer: absentParameters ? sequence(RSA_ALGORITHM, bitString(bits)) : spkiDer,
    rsaModulusBits: bitsInModulus,
    material: { kind: "jwk", jwk: { kty: "RSA", n: n.toString("base64url"), e: (exponent[0] === 0 ? exponent.subarray(1) : exponent).toString("base64url") } },
  };
}

function unusable(key: SubjectPublicKey, cause: unknown): MandateError {
  return new MandateError("INVALID_CSR", `invalid CSR: the ${key.keyAlgorithm} public key is not a valid key`, { cause });
}

/**
 * The fastest import node offers per key type: a raw EC point through WebCrypto (it
 * checks the point is on the curve but skips the DER decoder), JWK for the others.
 */
export async function importPublicKey(key: SubjectPublicKey): Promise<KeyObject> {
  try {
    const material = key.material;
    if (material.kind === "jwk") return createPublicKey({ key: material.jwk, format: "jwk" });
    const cryptoKey = await webcrypto.subtle.importKey("raw", material.point, { name: "ECDSA", namedCurve: material.namedCurve }, true, ["verify"]);
    return KeyObject.from(cryptoKey);
  } catch (error) {
    throw unusable(key, error);
  }
}

/** The slower synchronous import, for callers that want a KeyObject outside the hot path. */
export function publicKeyObject(key: SubjectPublicKey): KeyObject {
  try {
    return createPublicKey({ key: key.spkiDer, format: "der", type: "spki" });
  } catch (error) {
    throw unusable(key, error);
  }
}
