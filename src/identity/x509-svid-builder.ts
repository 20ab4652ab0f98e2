import { type KeyObject, createHash, createPublicKey, sign } from "node:crypto";
import { MandateError, isMandateError } from "../errors/index.js";
import type { CsrKeyAlgorithm } from "./csr.js";
import { DerReader, TAG } from "./der/reader.js";
import { BOOLEAN_TRUE, NULL, bitString, contextConstructed, contextPrimitive, integer, octetString, oid, positiveInteger, sequence, time } from "./der/writer.js";
import { parseSpiffeId } from "./spiffe-id.js";
import { inspectCertificate } from "./x509-inspect.js";

export interface X509SvidFields {
  spiffeId: string;
  spkiDer: Buffer;
  keyAlgorithm: CsrKeyAlgorithm;
  /**
   * Random bytes (16 from the issuer), read as an unsigned big-endian magnitude. A 0x00
   * octet is prepended when the top bit is set instead of clearing that bit, so all 128
   * random bits survive; leading zero octets are dropped because DER INTEGERs are minimal.
   */
  serial: Buffer;
  notBefore: Date;
  notAfter: Date;
}

export interface X509SvidBuilder {
  /** The TBSCertificate alone, for comparison against a reference encoder. */
  buildTbs(fields: X509SvidFields): Buffer;
  /**
   * A signed leaf, DER. `signTbs` signs with this issuer's key elsewhere (the issuer passes
   * its signature workers); without it, node's callback form of `crypto.sign` is used.
   */
  buildX509Svid(fields: X509SvidFields, signTbs?: (tbs: Buffer, privateKey: KeyObject) => Promise<Buffer>): Promise<Buffer>;
}

// RFC 5280 §4.1.2.2: serials fit in 20 octets.
const MAX_SERIAL_OCTETS = 20;

// Everything constant is encoded once, at load.
const VERSION_3 = contextConstructed(0, integer(2));
const ECDSA_WITH_SHA256 = sequence(oid("1.2.840.10045.4.3.2"));
const EMPTY_NAME = sequence();
const BASIC_CONSTRAINTS_LEAF = sequence(oid("2.5.29.19"), BOOLEAN_TRUE, octetString(sequence()));
// digitalSignature is bit 0 (0x80, 7 unused bits); with keyEncipherment (bit 2) the octet is 0xa0 with 5 unused bits.
const KEY_USAGE_SIGN = sequence(oid("2.5.29.15"), BOOLEAN_TRUE, octetString(bitString(Buffer.from([0x80]), 7)));
const KEY_USAGE_SIGN_ENCIPHER = sequence(oid("2.5.29.15"), BOOLEAN_TRUE, octetString(bitString(Buffer.from([0xa0]), 5)));
const EXT_KEY_USAGE = sequence(oid("2.5.29.37"), octetString(sequence(oid("1.3.6.1.5.5.7.3.1"), oid("1.3.6.1.5.5.7.3.2"))));
const OID_SUBJECT_KEY_ID = oid("2.5.29.14");
const OID_AUTHORITY_KEY_ID = oid("2.5.29.35");
const OID_SAN = oid("2.5.29.17");

const OID_EC_PUBLIC_KEY = oid("1.2.840.10045.2.1");
/** The SubjectPublicKeyInfo algorithm each key type must carry, so the key usage chosen from `keyAlgorithm` fits the key. */
const SPKI_ALGORITHM: Record<CsrKeyAlgorithm, Buffer> = {
  "ec-p256": sequence(OID_EC_PUBLIC_KEY, oid("1.2.840.10045.3.1.7")),
  "ec-p384": sequence(OID_EC_PUBLIC_KEY, oid("1.3.132.0.34")),
  ed25519: sequence(oid("1.3.101.112")),
  rsa: sequence(oid("1.2.840.113549.1.1.1"), NULL),
};

function badInput(reason: string): MandateError {
  return new MandateError("INVALID_ARGUMENT", `cannot build X509-SVID: ${reason}`);
}

function readSpki(spkiDer: Buffer, keyAlgorithm: CsrKeyAlgorithm): Buffer {
  if (!Buffer.isBuffer(spkiDer)) throw badInput("public key is not DER bytes");
  const expected = SPKI_ALGORITHM[keyAlgorithm];
  if (!expected) throw badInput(`unknown key algorithm ${String(keyAlgorithm)}`);
  try {
    const outer = new DerReader(spkiDer, "INVALID_ARGUMENT", "public key");
    const spki = outer.enter(TAG.SEQUENCE);
    outer.end();
    const algorithm = spki.read(TAG.SEQUENCE);
    const { bits } = spki.readBitString();
    spki.end();
    if (!algorithm.bytes.equals(expected)) throw badInput(`public key is not an ${keyAlgorithm} SubjectPublicKeyInfo`);
    return bits;
  } catch (error) {
    if (isMandateError(error, "INVALID_ARGUMENT")) throw error;
    throw badInput((error as Error).message);
  }
}

/** SHA-1 of the subjectPublicKey BIT STRING contents: RFC 5280 §4.2.1.2 method (1). */
export function keyIdentifierOf(spkiDer: Buffer, keyAlgorithm: CsrKeyAlgorithm): Buffer {
  return createHash("sha1").update(readSpki(spkiDer, keyAlgorithm)).digest();
}

function serialInteger(serial: Buffer): Buffer {
  if (!Buffer.isBuffer(serial)) throw badInput("serial is not bytes");
  const encoded = positiveInteger(serial);
  // Content octets follow the tag and a one-octet length (serials are short).
  if (encoded.length - 2 > MAX_SERIAL_OCTETS) throw badInput(`serial is longer than ${MAX_SERIAL_OCTETS} octets`);
  if (encoded.length === 3 && encoded[2] === 0) throw badInput("serial must be positive");
  return encoded;
}


function unavailable(reason: string): MandateError {
  return new MandateError("CA_UNAVAILABLE", `X509-SVID authority unusable: ${reason}`);
}

function loadIssuer(issuer: { certDer: Buffer; privateKey: KeyObject }) {
  let info;
  try {
    info = inspectCertificate(issuer.certDer);
  } catch (error) {
    throw unavailable((error as Error).message);
  }
  if (!info.isCa || !info.keyUsage?.keyCertSign) throw unavailable("the issuer certificate is not a CA allowed to sign certificates");
  if (!info.subjectKeyId) throw unavailable("the issuer certificate has no subjectKeyIdentifier to name it by");
  if (issuer.privateKey.asymmetricKeyType !== "ec" || issuer.privateKey.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw unavailable("the signing key must be ECDSA P-256");
  }
  // A key that does not match the certificate would yield leaves nobody can verify.
  const fromKey = createPublicKey(issuer.privateKey).export({ type: "spki", format: "der" });
  const fromCert = createPublicKey({ key: info.spkiDer, format: "der", type: "spki" }).export({ type: "spki", format: "der" });
  if (!fromKey.equals(fromCert)) {
    throw unavailable("the signing key does not match the issuer certificate");
  }
  const issuerIds = info.uriSans.filter((uri) => uri.startsWith("spiffe://"));
  const trustDomain = issuerIds.length === 1 ? parseSpiffeId(issuerIds[0]!).trustDomain : undefined;
  return {
    // Copied so the template does not pin (or follow changes to) the caller's certificate buffer.
    name: Buffer.from(info.subjectDer),
    notAfter: info.notAfter.getTime(),
    trustDomain,
    authorityKeyId: sequence(OID_AUTHORITY_KEY_ID, octetString(sequence(contextPrimitive(0, Buffer.from(info.subjectKeyId, "hex"))))),
  };
}

/**
 * Builds X509-SVID leaves from a DER template: everything that depends only on the
 * issuer is encoded once, so an issuance costs a few small buffer writes, one SHA-1
 * and one ECDSA P-256 signature on the threadpool. The TBSCertificate equals, byte for
 * byte, what @peculiar/x509 builds from the same fields (see the tests): v3, an empty
 * subject with a critical URI SAN, CA:FALSE, digitalSignature (+keyEncipherment for
 * RSA keys), serverAuth+clientAuth, and SKI/AKI for path building.
 */
export function createX509SvidBuilder(issuer: { certDer: Buffer; privateKey: KeyObject }): X509SvidBuilder {
  const loaded = loadIssuer(issuer);
  const privateKey = issuer.privateKey;

  function buildTbs(fields: X509SvidFields): Buffer {
    const notBefore = fields.notBefore?.getTime?.();
    const notAfter = fields.notAfter?.getTime?.();
    if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter)) throw badInput("notBefore and notAfter must be valid dates");
    if (notAfter! <= notBefore!) throw badInput("notAfter must be after notBefore");
    if (notAfter! > loaded.notAfter) {
      throw new MandateError("CA_UNAVAILABLE", `refusing to issue an X509-SVID that outlives its signing authority (expires ${new Date(loaded.notAfter).toISOString()})`);
    }
    const id = parseSpiffeId(fields.spiffeId);
    if (id.path === "") throw new MandateError("INVALID_SPIFFE_ID", `an X509-SVID names a workload, not the trust domain itself: ${fields.spiffeId}`);
    if (loaded.trustDomain !== undefined && id.trustDomain !== loaded.trustDomain) {
      throw new MandateError("INVALID_SPIFFE_ID", `the authority of ${loaded.trustDomain} cannot issue ${fields.spiffeId}`);
    }
    const extensions = sequence(
      BASIC_CONSTRAINTS_LEAF,
      fields.keyAlgorithm === "rsa" ? KEY_USAGE_SIGN_ENCIPHER : KEY_USAGE_SIGN,
      EXT_KEY_USAGE,
      sequence(OID_SUBJECT_KEY_ID, octetString(octetString(keyIdentifierOf(fields.spkiDer, fields.keyAlgorithm)))),
      loaded.authorityKeyId,
      // Critical because the subject is empty (RFC 5280 §4.2.1.6); parseSpiffeId guarantees ASCII.
      sequence(OID_SAN, BOOLEAN_TRUE, octetString(sequence(contextPrimitive(6, Buffer.from(fields.spiffeId, "latin1"))))),
    );
    return sequence(
      VERSION_3,
      serialInteger(fields.serial),
      ECDSA_WITH_SHA256,
      loaded.name,
      sequence(time(fields.notBefore), time(fields.notAfter)),
      EMPTY_NAME,
      fields.spkiDer,
      contextConstructed(3, extensions),
    );
  }

  return {
    buildTbs,
    async buildX509Svid(fields: X509SvidFields, signTbs?: (tbs: Buffer, privateKey: KeyObject) => Promise<Buffer>): Promise<Buffer> {
      const tbs = buildTbs(fields);
      const signature = signTbs
        ? await signTbs(tbs, privateKey)
        : await new Promise<Buffer>((resolve, reject) => {
            sign("sha256", tbs, privateKey, (error, result) =>
              error ? reject(new MandateError("CA_UNAVAILABLE", "signing the X509-SVID failed", { cause: error })) : resolve(result),
            );
          });
      return sequence(tbs, ECDSA_WITH_SHA256, bitString(signature));
    },
  };
}
