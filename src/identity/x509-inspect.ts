import { MandateError, isMandateError } from "../errors/index.js";
import { DerReader, TAG, decodeOid, decodeTime } from "./der/reader.js";
import { type GeneralNames, readGeneralNames } from "./general-names.js";

export interface KeyUsageBits {
  digitalSignature: boolean;
  keyEncipherment: boolean;
  keyCertSign: boolean;
  cRLSign: boolean;
}

export interface InspectedCertificate {
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  isCa: boolean;
  keyUsage: KeyUsageBits | undefined;
  /** Every URI SAN, counted by the ASN.1 reader (never by splitting a display string). */
  uriSans: string[];
  sans: GeneralNames | undefined;
  subjectEmpty: boolean;
  sanCritical: boolean;
  subjectKeyId: string | undefined;
  authorityKeyId: string | undefined;
  tbsDer: Buffer;
  spkiDer: Buffer;
}

/** Reads the fields SPIFFE validation needs straight from the DER. */
export function inspectCertificate(der: Buffer): InspectedCertificate {
  try {
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
  const tbs = cert.child(tbsElement);
  tbs.readOptional(0xa0);
  const serial = tbs.read(TAG.INTEGER).value;
  tbs.read(TAG.SEQUENCE);
  tbs.read(TAG.SEQUENCE);
  const validity = tbs.enter(TAG.SEQUENCE);
  const notBefore = decodeTime(validity.read(), validity);
  const notAfter = decodeTime(validity.read(), validity);
  validity.end();
  const subject = tbs.read(TAG.SEQUENCE);
  const spki = tbs.read(TAG.SEQUENCE);
  const result: InspectedCertificate = {
    serialHex: stripSign(serial).toString("hex"),
    notBefore,
    notAfter,
    isCa: false,
    keyUsage: undefined,
    uriSans: [],
    sans: undefined,
    subjectEmpty: subject.value.length === 0,
    sanCritical: false,
    subjectKeyId: undefined,
    authorityKeyId: undefined,
    tbsDer: tbsElement.bytes,
    spkiDer: spki.bytes,
  };
  const seen = new Set<string>();
  while (!tbs.done) {
    const element = tbs.read();
    if (element.tag !== 0xa3) continue;
    const extensions = tbs.child(element).enter(TAG.SEQUENCE);
    while (!extensions.done) {
      const extension = extensions.enter(TAG.SEQUENCE);
      const id = decodeOid(extension.read(TAG.OID).value);
      const critical = extension.readOptional(TAG.BOOLEAN)?.value[0] === 0xff;
      const value = extension.child(extension.read(TAG.OCTET_STRING));
      extension.end();
      if (seen.has(id)) throw value.error(`extension ${id} appears twice`);
      seen.add(id);
      switch (id) {
        case "2.5.29.19": {
          const bc = value.enter(TAG.SEQUENCE);
          result.isCa = bc.readOptional(TAG.BOOLEAN)?.value[0] === 0xff;
          break;
        }
        case "2.5.29.15": {
          const bits = value.read(TAG.BIT_STRING).value;
          // Bits 0 (digitalSignature), 2 (keyEncipherment), 5 (keyCertSign), 6 (cRLSign) all live in the first content byte.
          const first = bits[1] ?? 0;
          result.keyUsage = { digitalSignature: (first & 0x80) !== 0, keyEncipherment: (first & 0x20) !== 0, keyCertSign: (first & 0x04) !== 0, cRLSign: (first & 0x02) !== 0 };
          break;
        }
        case "2.5.29.17":
          result.sans = readGeneralNames(value);
          result.uriSans = result.sans.uris;
          result.sanCritical = critical;
          break;
        case "2.5.29.14":
          result.subjectKeyId = value.read(TAG.OCTET_STRING).value.toString("hex");
          break;
        case "2.5.29.35": {
          const aki = value.enter(TAG.SEQUENCE);
          const keyId = aki.readOptional(0x80);
          result.authorityKeyId = keyId?.value.toString("hex");
          break;
        }
      }
    }
  }
  return result;
}

function stripSign(serial: Buffer): Buffer {
  return serial.length > 1 && serial[0] === 0 ? serial.subarray(1) : serial;
}
