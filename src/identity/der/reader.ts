import { MandateError, type MandateErrorCode } from "../../errors/index.js";

/** One DER element: views into the input, never copies. */
export interface DerElement {
  tag: number;
  /** Tag and length octets. */
  headerLength: number;
  /** The whole TLV (header + value). */
  bytes: Buffer;
  value: Buffer;
}

// Certificates and CSRs nest about 8 levels; the cap keeps hostile input from recursing without end.
const MAX_DEPTH = 32;
// Four length octets address 4 GiB, far beyond any input we accept, so longer forms are hostile.
const MAX_LENGTH_OCTETS = 4;

/**
 * A strict DER reader: definite, minimally encoded lengths only, low-tag-number form,
 * no trailing bytes, every read bounds-checked. Everything it cannot read is an error
 * with the caller's code, so a CSR parser reports INVALID_CSR and a certificate parser
 * INVALID_CERTIFICATE, without re-wrapping.
 */
export class DerReader {
  private offset = 0;

  constructor(
    private readonly input: Buffer,
    readonly errorCode: MandateErrorCode,
    private readonly what: string,
    private readonly depth = 0,
  ) {
    if (depth > MAX_DEPTH) throw this.error("nested too deeply");
  }

  error(reason: string): MandateError {
    return new MandateError(this.errorCode, `malformed ${this.what}: ${reason}`);
  }

  get done(): boolean {
    return this.offset >= this.input.length;
  }

  peekTag(): number | undefined {
    return this.done ? undefined : this.input[this.offset];
  }

  read(expectedTag?: number): DerElement {
    const input = this.input;
    const start = this.offset;
    if (start + 2 > input.length) throw this.error("truncated element");
    const tag = input[start]!;
    if ((tag & 0x1f) === 0x1f) throw this.error("high tag numbers are not used by X.509");
    if (expectedTag !== undefined && tag !== expectedTag) {
      throw this.error(`expected tag 0x${expectedTag.toString(16)}, found 0x${tag.toString(16)}`);
    }
    let length = input[start + 1]!;
    let headerLength = 2;
    if (length & 0x80) {
      const count = length & 0x7f;
      if (count === 0) throw this.error("indefinite length is not DER");
      if (count > MAX_LENGTH_OCTETS) throw this.error("length too large");
      if (start + 2 + count > input.length) throw this.error("truncated length");
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + input[start + 2 + i]!;
      if (input[start + 2] === 0 || length < 0x80) throw this.error("length is not minimally encoded");
      headerLength += count;
    }
    const end = start + headerLength + length;
    if (end > input.length) throw this.error("element runs past the end of its container");
    this.offset = end;
    return { tag, headerLength, bytes: input.subarray(start, end), value: input.subarray(start + headerLength, end) };
  }

  readOptional(tag: number): DerElement | undefined {
    return this.peekTag() === tag ? this.read(tag) : undefined;
  }

  /** Reads a constructed element and returns a reader over its contents. */
  enter(expectedTag: number): DerReader {
    return this.child(this.read(expectedTag));
  }

  child(element: DerElement): DerReader {
    if ((element.tag & 0x20) === 0) throw this.error(`tag 0x${element.tag.toString(16)} is not constructed`);
    return new DerReader(element.value, this.errorCode, this.what, this.depth + 1);
  }

  /** A reader over an OCTET STRING's contents (extension values wrap DER in one). */
  wrapped(element: DerElement): DerReader {
    return new DerReader(element.value, this.errorCode, this.what, this.depth + 1);
  }

  end(): void {
    if (!this.done) throw this.error("unexpected trailing bytes");
  }

  readOid(): string {
    return decodeOid(this.read(TAG.OID).value, this.errorCode);
  }

  /** DER allows only 0x00 and 0xff, in one octet. */
  readBoolean(): boolean {
    const value = this.read(TAG.BOOLEAN).value;
    if (value.length !== 1 || (value[0] !== 0 && value[0] !== 0xff)) throw this.error("BOOLEAN is not DER");
    return value[0] === 0xff;
  }

  /** An optional BOOLEAN whose absence means `false`; DER forbids encoding that default. */
  readDefaultFalse(): boolean {
    if (this.peekTag() !== TAG.BOOLEAN) return false;
    if (!this.readBoolean()) throw this.error("a DEFAULT FALSE BOOLEAN must be omitted, not encoded");
    return true;
  }

  /** A small non-negative INTEGER (versions, path lengths). */
  readSmallInteger(): number {
    const value = this.read(TAG.INTEGER).value;
    checkInteger(value, this);
    if (value[0]! & 0x80) throw this.error("negative INTEGER where a count is expected");
    if (value.length > 4) throw this.error("INTEGER too large");
    return value.reduce((acc, byte) => acc * 256 + byte, 0);
  }

  /** INTEGER content octets, checked for DER minimality. */
  readIntegerBytes(): Buffer {
    const value = this.read(TAG.INTEGER).value;
    checkInteger(value, this);
    return value;
  }

  /** BIT STRING contents with the unused-bits octet removed; `unusedBits` must be zero unless allowed. */
  readBitString(allowUnusedBits = false): { bits: Buffer; unusedBits: number } {
    const value = this.read(TAG.BIT_STRING).value;
    if (value.length === 0) throw this.error("BIT STRING without its unused-bits octet");
    const unusedBits = value[0]!;
    if (unusedBits > 7 || (value.length === 1 && unusedBits !== 0)) throw this.error("bad BIT STRING unused-bits count");
    if (unusedBits !== 0 && !allowUnusedBits) throw this.error("BIT STRING must hold whole octets");
    if (unusedBits !== 0 && (value[value.length - 1]! & ((1 << unusedBits) - 1)) !== 0) throw this.error("BIT STRING padding bits are not zero");
    return { bits: value.subarray(1), unusedBits };
  }

  /** Reads a UTCTime or GeneralizedTime (Z form with seconds only, as RFC 5280 requires). */
  readTime(): Date {
    return decodeTime(this.read(), this);
  }
}

function checkInteger(value: Buffer, reader: DerReader): void {
  if (value.length === 0) throw reader.error("empty INTEGER");
  if (value.length > 1 && ((value[0] === 0 && value[1]! < 0x80) || (value[0] === 0xff && value[1]! >= 0x80))) {
    throw reader.error("INTEGER is not minimally encoded");
  }
}

export const TAG = {
  BOOLEAN: 0x01,
  INTEGER: 0x02,
  BIT_STRING: 0x03,
  OCTET_STRING: 0x04,
  NULL: 0x05,
  OID: 0x06,
  UTF8_STRING: 0x0c,
  SEQUENCE: 0x30,
  SET: 0x31,
  UTC_TIME: 0x17,
  GENERALIZED_TIME: 0x18,
} as const;

/** Decodes OBJECT IDENTIFIER contents; a non-minimal arc (leading 0x80) is rejected, as DER requires. */
export function decodeOid(value: Buffer, code: MandateErrorCode = "MALFORMED_REQUEST"): string {
  if (value.length === 0) throw new MandateError(code, "malformed OID: empty");
  let text = "";
  let acc = 0;
  let arcStart = true;
  for (let i = 0; i < value.length; i++) {
    const byte = value[i]!;
    if (arcStart && byte === 0x80) throw new MandateError(code, "malformed OID: arc is not minimally encoded");
    // Past 2^46 the next shift would lose precision; no real OID has such an arc.
    if (acc > 2 ** 46) throw new MandateError(code, "malformed OID: arc too large");
    acc = acc * 128 + (byte & 0x7f);
    arcStart = (byte & 0x80) === 0;
    if (arcStart) {
      if (text === "") text = acc < 80 ? `${Math.floor(acc / 40)}.${acc % 40}` : `2.${acc - 80}`;
      else text += `.${acc}`;
      acc = 0;
    }
  }
  if (!arcStart) throw new MandateError(code, "malformed OID: truncated");
  return text;
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Reads a DER time: UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), with every field range-checked. */
export function decodeTime(element: DerElement, reader: DerReader): Date {
  const value = element.value;
  let year: number;
  let at: number;
  if (element.tag === TAG.UTC_TIME && value.length === 13) {
    const yy = digits(value, 0, 2, reader);
    // RFC 5280 §4.1.2.5.1: YY >= 50 means 19YY, otherwise 20YY.
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    at = 2;
  } else if (element.tag === TAG.GENERALIZED_TIME && value.length === 15) {
    year = digits(value, 0, 4, reader);
    at = 4;
  } else {
    throw reader.error("time must be a UTCTime or GeneralizedTime in Z form with seconds");
  }
  if (value[value.length - 1] !== 0x5a) throw reader.error("time must end in Z");
  const month = digits(value, at, 2, reader);
  const day = digits(value, at + 2, 2, reader);
  const hour = digits(value, at + 4, 2, reader);
  const minute = digits(value, at + 6, 2, reader);
  const second = digits(value, at + 8, 2, reader);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const monthDays = month === 2 && !leap ? 28 : DAYS_IN_MONTH[month - 1];
  if (monthDays === undefined || day < 1 || day > monthDays || hour > 23 || minute > 59 || second > 59) throw reader.error("time is out of range");
  const date = new Date(Date.UTC(2000, month - 1, day, hour, minute, second));
  // Date.UTC maps years 0-99 to 19xx, so the year is set on its own.
  date.setUTCFullYear(year);
  return date;
}

function digits(value: Buffer, start: number, count: number, reader: DerReader): number {
  let n = 0;
  for (let i = start; i < start + count; i++) {
    const d = value[i]! - 0x30;
    if (d < 0 || d > 9) throw reader.error("time has a non-digit");
    n = n * 10 + d;
  }
  return n;
}
