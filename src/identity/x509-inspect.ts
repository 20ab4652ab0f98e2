import { MandateError, isMandateError } from "../errors/index.js";
import { DerReader, TAG } from "./der/reader.js";
import { type GeneralNames, readGeneralNames } from "./general-names.js";

export interface KeyUsageBits {
  digitalSignature: boolean;
  nonRepudiation: boolean;
  keyEncipherment: boolean;
  dataEncipherment: boolean;
  keyAgreement: boolean;
  keyCertSign: boolean;
  cRLSign: boolean;
  encipherOnly: boolean;
  decipherOnly: boolean;
}

export interface InspectedCertificate {
  /** 1, 2 or 3. */
  version: number;
  /** The serial's INTEGER content without a leading sign octet. */
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  pathLength: number | undefined;
  keyUsage: KeyUsageBits | undefined;
  extKeyUsage: string[] | undefined;
  /** Every URI SAN, counted by the ASN.1 reader (never by splitting a display string). */
  uriSans: string[];
  sans: GeneralNames | undefined;
  sanCritical: boolean;
  subjectEmpty: boolean;
  subjectKeyId: string | undefined;
  authorityKeyId: string | undefined;
  /** Critical extensions this reader does not interpret; a validator must refuse them (RFC 5280 §4.2). */
  unknownCriticalExtensions: string[];
  signatureAlgorithmOid: string;
  subjectDer: Buffer;
  issuerDer: Buffer;
  tbsDer: Buffer;
  spkiDer: Buffer;
}

const EXT = {
  SUBJECT_KEY_ID: "2.5.29.14",
  KEY_USAGE: "2.5.29.15",
  SAN: "2.5.29.17",
  BASIC_CONSTRAINTS: "2.5.29.19",
  AUTHORITY_KEY_ID: "2.5.29.35",
  EXT_KEY_USAGE: "2.5.29.37",
} as const;

/** Reads the fields SPIFFE validation needs straight from the DER; any defect is INVALID_CERTIFICATE. */
export function inspectCertificate(der: Buffer): InspectedCertificate {
  try {
    if (!Buffer.isBuffer(der)) throw new MandateError("INVALID_CERTIFICATE", "malformed certificate: not a byte buffer");
    return inspect(der);
  } catch (error) {
    if (isMandateError(error, "INVALID_CERTIFICATE")) throw error;
    throw new MandateError("INVALID_CERTIFICATE", `malformed certificate: ${(error as Error).message}`);
  }
}

function inspect(der: Buffer): InspectedCertificate {
  const outer = new DerReader(der, "INVALID_CERTIFICATE", "certificate");
  const cert = outer.enter(TAG.SEQUENCE);
  outer.end();
  const tbsElement = cert.read(TAG.SEQUENCE);
  const outerAlgorithm = cert.read(TAG.SEQUENCE);
  cert.readBitString();
  cert.end();

  const tbs = cert.child(tbsElement);
  const versionElement = tbs.readOptional(0xa0);
  let version = 1;
  if (versionElement) {
    const versionReader = tbs.child(versionElement);
    version = versionReader.readSmallInteger() + 1;
    versionReader.end();
    if (version > 3) throw tbs.error(`unknown version ${version}`);
  }
  const serial = tbs.readIntegerBytes();
  const innerAlgorithm = tbs.read(TAG.SEQUENCE);
  // RFC 5280 §4.1.1.2: the signed and the unsigned algorithm must agree, or a verifier could be told a different story.
  if (!innerAlgorithm.bytes.equals(outerAlgorithm.bytes)) throw tbs.error("signature algorithm differs inside and outside the signed part");
  const signatureAlgorithmOid = tbs.child(innerAlgorithm).readOid();
  const issuer = tbs.read(TAG.SEQUENCE);
  const validity = tbs.enter(TAG.SEQUENCE);
  const notBefore = validity.readTime();
  const notAfter = validity.readTime();
  validity.end();
  const subject = tbs.read(TAG.SEQUENCE);
  const spki = tbs.read(TAG.SEQUENCE);
  if (tbs.readOptional(0x81) && version < 2) throw tbs.error("issuerUniqueID needs version 2 or 3");
  if (tbs.readOptional(0x82) && version < 2) throw tbs.error("subjectUniqueID needs version 2 or 3");
  const extensionsElement = tbs.readOptional(0xa3);
  tbs.end();

  const result: InspectedCertificate = {
    version,
    serialHex: (serial.length > 1 && serial[0] === 0 ? serial.subarray(1) : serial).toString("hex"),
    notBefore,
    notAfter,
    isCa: false,
    pathLength: undefined,
    keyUsage: undefined,
    extKeyUsage: undefined,
    uriSans: [],
    sans: undefined,
    sanCritical: false,
    subjectEmpty: subject.value.length === 0,
    subjectKeyId: undefined,
    authorityKeyId: undefined,
    unknownCriticalExtensions: [],
    signatureAlgorithmOid,
    subjectDer: subject.bytes,
    issuerDer: issuer.bytes,
    tbsDer: tbsElement.bytes,
    spkiDer: spki.bytes,
  };
  if (extensionsElement) {
    if (version !== 3) throw tbs.error("extensions need version 3");
    readExtensions(tbs.child(extensionsElement), result);
  }
  return result;
}

function readExtensions(wrapper: DerReader, result: InspectedCertificate): void {
  const extensions = wrapper.enter(TAG.SEQUENCE);
  wrapper.end();
  if (extensions.done) throw extensions.error("empty extensions list");
  const seen = new Set<string>();
  while (!extensions.done) {
    const extension = extensions.enter(TAG.SEQUENCE);
    const id = extension.readOid();
    // Explicit FALSE is not DER, but common encoders emit it and it changes nothing, so it is read, not refused.
    const critical = extension.peekTag() === TAG.BOOLEAN ? extension.readBoolean() : false;
    const value = extension.wrapped(extension.read(TAG.OCTET_STRING));
    extension.end();
    if (seen.has(id)) throw extensions.error(`extension ${id} appears twice`);
    seen.add(id);
    if (readExtension(id, critical, value, result)) value.end();
  }
}

/** Returns whether the extension was interpreted (and so must have been read to its end). */
function readExtension(id: string, critical: boolean, value: DerReader, result: InspectedCertificate): boolean {
  switch (id) {
    case EXT.BASIC_CONSTRAINTS: {
      const bc = value.enter(TAG.SEQUENCE);
      result.isCa = bc.peekTag() === TAG.BOOLEAN ? bc.readBoolean() : false;
      if (bc.peekTag() === TAG.INTEGER) result.pathLength = bc.readSmallInteger();
      bc.end();
      return true;
    }
    case EXT.KEY_USAGE: {
      const { bits } = value.readBitString(true);
      const first = bits[0] ?? 0;
      result.keyUsage = {
        digitalSignature: (first & 0x80) !== 0,
        nonRepudiation: (first & 0x40) !== 0,
        keyEncipherment: (first & 0x20) !== 0,
        dataEncipherment: (first & 0x10) !== 0,
        keyAgreement: (first & 0x08) !== 0,
        keyCertSign: (first & 0x04) !== 0,
        cRLSign: (first & 0x02) !== 0,
        encipherOnly: (first & 0x01) !== 0,
        decipherOnly: ((bits[1] ?? 0) & 0x80) !== 0,
      };
      return true;
    }
    case EXT.EXT_KEY_USAGE: {
      const purposes = value.enter(TAG.SEQUENCE);
      result.extKeyUsage = [];
      while (!purposes.done) result.extKeyUsage.push(purposes.readOid());
      return true;
    }
    case EXT.SAN:
      result.sans = readGeneralNames(value);
      result.uriSans = result.sans.uris;
      result.sanCritical = critical;
      return true;
    case EXT.SUBJECT_KEY_ID:
      result.subjectKeyId = value.read(TAG.OCTET_STRING).value.toString("hex");
      return true;
    case EXT.AUTHORITY_KEY_ID: {
      const aki = value.enter(TAG.SEQUENCE);
      result.authorityKeyId = aki.readOptional(0x80)?.value.toString("hex");
      aki.readOptional(0xa1);
      aki.readOptional(0x82);
      aki.end();
      return true;
    }
    default:
      if (critical) result.unknownCriticalExtensions.push(id);
      return false;
  }
}
