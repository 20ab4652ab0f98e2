import { type KeyObject, X509Certificate, createHash, sign } from "node:crypto";
import { MandateError } from "../errors/index.js";
import type { CsrKeyAlgorithm } from "./csr.js";
import { DerReader, TAG, decodeOid } from "./der/reader.js";
import { BOOLEAN_TRUE, bitString, contextConstructed, contextPrimitive, octetString, oid, positiveInteger, sequence, time, tlv } from "./der/writer.js";

export interface X509SvidFields {
  spiffeId: string;
  spkiDer: Buffer;
  keyAlgorithm: CsrKeyAlgorithm;
  /** Magnitude bytes of the serial (made positive when encoded). */
  serial: Buffer;
  notBefore: Date;
  notAfter: Date;
}

// Constant pieces, encoded once at load.
const VERSION_3 = contextConstructed(0, tlv(TAG.INTEGER, Buffer.from([2])));
const ECDSA_SHA256 = sequence(oid("1.2.840.10045.4.3.2"));
const EMPTY_NAME = sequence();
const BASIC_CONSTRAINTS_LEAF = sequence(oid("2.5.29.19"), BOOLEAN_TRUE, octetString(sequence()));
// keyUsage bits: digitalSignature (bit 0) = 0x80 with 7 unused bits; plus keyEncipherment (bit 2) = 0xa0 with 5 unused bits.
const KEY_USAGE_SIGN = sequence(oid("2.5.29.15"), BOOLEAN_TRUE, octetString(tlv(TAG.BIT_STRING, Buffer.from([7, 0x80]))));
const KEY_USAGE_SIGN_ENCIPHER = sequence(oid("2.5.29.15"), BOOLEAN_TRUE, octetString(tlv(TAG.BIT_STRING, Buffer.from([5, 0xa0]))));
const EXT_KEY_USAGE = sequence(oid("2.5.29.37"), octetString(sequence(oid("1.3.6.1.5.5.7.3.1"), oid("1.3.6.1.5.5.7.3.2"))));
const OID_SKI = oid("2.5.29.14");
const OID_SAN = oid("2.5.29.17");

/** SHA-1 of the subjectPublicKey BIT STRING contents: RFC 5280 §4.2.1.2 method (1). */
export function keyIdentifierOf(spkiDer: Buffer): Buffer {
  const reader = new DerReader(spkiDer, "INVALID_CSR", "public key");
  const spki = reader.enter(TAG.SEQUENCE);
  spki.read(TAG.SEQUENCE);
  const bits = spki.read(TAG.BIT_STRING).value;
  return createHash("sha1").update(bits.subarray(1)).digest();
}

function readIssuer(certDer: Buffer): { subjectDer: Buffer; keyId: Buffer | undefined } {
  const reader = new DerReader(certDer, "CA_UNAVAILABLE", "issuer certificate");
  const tbs = reader.enter(TAG.SEQUENCE).enter(TAG.SEQUENCE);
  tbs.readOptional(0xa0);
  tbs.read(TAG.INTEGER);
  tbs.read(TAG.SEQUENCE);
  tbs.read(TAG.SEQUENCE);
  tbs.read(TAG.SEQUENCE);
  const subjectDer = tbs.read(TAG.SEQUENCE).bytes;
  tbs.read(TAG.SEQUENCE);
  let keyId: Buffer | undefined;
  while (!tbs.done) {
    const element = tbs.read();
    if (element.tag !== 0xa3) continue;
    const extensions = tbs.child(element).enter(TAG.SEQUENCE);
    while (!extensions.done) {
      const extension = extensions.enter(TAG.SEQUENCE);
      const id = decodeOid(extension.read(TAG.OID).value);
      extension.readOptional(TAG.BOOLEAN);
      const value = extension.read(TAG.OCTET_STRING);
      if (id === "2.5.29.14") keyId = extension.child(value).read(TAG.OCTET_STRING).value;
    }
  }
  return { subjectDer, keyId };
}

/**
 * Builds X509-SVID leaves from a DER template: everything that depends only on the
 * issuer is encoded once, so an issuance costs a few small buffer concatenations and
 * one signature (run on the threadpool). The output equals, byte for byte, what
 * @peculiar/x509 builds from the same fields (see the tests), with an empty subject,
 * a critical URI SAN, CA:FALSE, digitalSignature and serverAuth+clientAuth.
 */
export function createX509SvidBuilder(issuer: { certDer: Buffer; privateKey: KeyObject }) {
  const { subjectDer: issuerName, keyId } = readIssuer(issuer.certDer);
  const issuerNotAfter = new Date(new X509Certificate(issuer.certDer).validTo).getTime();
  const authorityKeyId = keyId ? sequence(oid("2.5.29.35"), octetString(sequence(contextPrimitive(0, keyId)))) : Buffer.alloc(0);
  if (issuer.privateKey.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new MandateError("CA_UNAVAILABLE", "the X509-SVID builder signs with an ECDSA P-256 authority key");
  }

  function buildTbs(fields: X509SvidFields): Buffer {
    if (fields.notAfter.getTime() > issuerNotAfter) {
      throw new MandateError("CA_UNAVAILABLE", "refusing to issue an X509-SVID that outlives its signing authority");
    }
    if (fields.notAfter.getTime() <= fields.notBefore.getTime()) throw new MandateError("INVALID_ARGUMENT", "notAfter must be after notBefore");
    const extensions = sequence(
      BASIC_CONSTRAINTS_LEAF,
      fields.keyAlgorithm === "rsa" ? KEY_USAGE_SIGN_ENCIPHER : KEY_USAGE_SIGN,
      EXT_KEY_USAGE,
      sequence(OID_SKI, octetString(octetString(keyIdentifierOf(fields.spkiDer)))),
      authorityKeyId,
      sequence(OID_SAN, BOOLEAN_TRUE, octetString(sequence(contextPrimitive(6, Buffer.from(fields.spiffeId, "latin1"))))),
    );
    return sequence(
      VERSION_3,
      positiveInteger(fields.serial),
      ECDSA_SHA256,
      issuerName,
      sequence(time(fields.notBefore), time(fields.notAfter)),
      EMPTY_NAME,
      fields.spkiDer,
      contextConstructed(3, extensions),
    );
  }

  return {
    buildTbs,
    async buildX509Svid(fields: X509SvidFields): Promise<Buffer> {
      const tbs = buildTbs(fields);
      const signature = await new Promise<Buffer>((resolve, reject) => {
        sign("sha256", tbs, issuer.privateKey, (error, result) => (error ? reject(error) : resolve(result)));
      });
      return sequence(tbs, ECDSA_SHA256, bitString(signature));
    },
  };
}

export type X509SvidBuilder = ReturnType<typeof createX509SvidBuilder>;
