import { MandateError, type MandateErrorCode } from "../../errors/index.js";

/** One DER element: a view into the input, never a copy. */
export interface DerElement {
  tag: number;
  /** The whole TLV (header + value). */
  bytes: Buffer;
  value: Buffer;
}

const MAX_DEPTH = 32;

/**
 * A strict DER reader: definite, minimally encoded lengths only, no trailing bytes,
 * bounds-checked. Everything it cannot read is an error with the caller's code, so a
 * CSR parser reports INVALID_CSR and a certificate parser INVALID_CERTIFICATE.
 */
export class DerReader {
  private offset = 0;

  constructor(
    private readonly input: Buffer,
    private readonly errorCode: MandateErrorCode,
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
    if ((tag & 0x1f) === 0x1f) throw this.error("multi-byte tags are not supported");
    if (expectedTag !== undefined && tag !== expectedTag) {
      throw this.error(`expected tag 0x${expectedTag.toString(16)}, found 0x${tag.toString(16)}`);
    }
    let length = input[start + 1]!;
    let headerLength = 2;
    if (length & 0x80) {
      const count = length & 0x7f;
      if (count === 0) throw this.error("indefinite length is not DER");
      if (count > 4) throw this.error("length too large");
      if (start + 2 + count > input.length) throw this.error("truncated length");
      length = 0;
      for (let i = 0; i < count; i++) length = length * 256 + input[start + 2 + i]!;
      if (input[start + 2] === 0 || length < 0x80) throw this.error("length is not minimally encoded");
      headerLength += count;
    }
    const end = start + headerLength + length;
    if (end > input.length) throw this.error("element runs past the end of its container");
    this.offset = end;
    return { tag, bytes: input.subarray(start, end), value: input.subarray(start + headerLength, end) };
  }

  readOptional(tag: number): DerElement | undefined {
    return this.peekTag() === tag ? this.read(tag) : undefined;
  }

  /** Reads a constructed element and returns a reader over its contents. */
  enter(expectedTag: number): DerReader {
    return new DerReader(this.read(expectedTag).value, this.errorCode, this.what, this.depth + 1);
  }

  child(element: DerElement): DerReader {
    return new DerReader(element.value, this.errorCode, this.what, this.depth + 1);
  }

  end(): void {
    if (!this.done) throw this.error("unexpected trailing bytes");
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

export function decodeOid(value: Buffer): string {
  if (value.length === 0) throw new MandateError("MALFORMED_REQUEST", "empty OID");
  const parts: number[] = [];
  let acc = 0;
  for (let i = 0; i < value.length; i++) {
    const byte = value[i]!;
    acc = acc * 128 + (byte & 0x7f);
    if (acc > Number.MAX_SAFE_INTEGER / 128) throw new MandateError("MALFORMED_REQUEST", "OID arc too large");
    if ((byte & 0x80) === 0) {
      if (parts.length === 0) parts.push(acc < 80 ? Math.floor(acc / 40) : 2, acc < 80 ? acc % 40 : acc - 80);
      else parts.push(acc);
      acc = 0;
    } else if (i === value.length - 1) {
      throw new MandateError("MALFORMED_REQUEST", "truncated OID");
    }
  }
  return parts.join(".");
}

/** Reads a DER time (UTCTime or GeneralizedTime, Z form only, as RFC 5280 requires). */
export function decodeTime(element: DerElement, reader: DerReader): Date {
  const text = element.value.toString("latin1");
  let match: RegExpExecArray | null;
  let year: number;
  if (element.tag === TAG.UTC_TIME && (match = /^(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    const yy = Number(match[1]);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
  } else if (element.tag === TAG.GENERALIZED_TIME && (match = /^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})Z$/.exec(text))) {
    year = Number(match[1]);
  } else {
    throw reader.error("invalid time");
  }
  const date = new Date(Date.UTC(year, Number(match[2]) - 1, Number(match[3]), Number(match[4]), Number(match[5]), Number(match[6])));
  if (Number.isNaN(date.getTime())) throw reader.error("invalid time");
  return date;
}
