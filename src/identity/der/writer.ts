import { MandateError } from "../../errors/index.js";

/**
 * Minimal DER encoding: enough to assemble certificates without an ASN.1 object model.
 * Each element is written with one allocation, because certificate issuance builds
 * a few dozen of them per request on the hot path.
 */

function lengthOctets(length: number): number {
  if (length < 0x80) return 1;
  if (length < 0x100) return 2;
  if (length < 0x10000) return 3;
  if (length < 0x1000000) return 4;
  return 5;
}

function writeLength(target: Buffer, at: number, length: number): number {
  const octets = lengthOctets(length);
  if (octets === 1) {
    target[at] = length;
    return at + 1;
  }
  target[at] = 0x80 | (octets - 1);
  for (let i = octets - 1; i >= 1; i--) {
    target[at + i] = length & 0xff;
    length = Math.floor(length / 256);
  }
  return at + octets;
}

export function encodeLength(length: number): Buffer {
  if (!Number.isSafeInteger(length) || length < 0 || length > 0xffffffff) throw new MandateError("INVALID_ARGUMENT", `cannot encode DER length ${length}`);
  const out = Buffer.allocUnsafe(lengthOctets(length));
  writeLength(out, 0, length);
  return out;
}

export function tlv(tag: number, ...contents: Buffer[]): Buffer {
  let length = 0;
  for (const part of contents) length += part.length;
  const out = Buffer.allocUnsafe(1 + lengthOctets(length) + length);
  out[0] = tag;
  let at = writeLength(out, 1, length);
  for (const part of contents) at += part.copy(out, at);
  return out;
}

export const sequence = (...contents: Buffer[]): Buffer => tlv(0x30, ...contents);
/** Callers sort SET OF members themselves: DER orders them by encoding, which only the caller can know is needed. */
export const set = (...contents: Buffer[]): Buffer => tlv(0x31, ...contents);
export const octetString = (value: Buffer): Buffer => tlv(0x04, value);
export const contextConstructed = (n: number, ...contents: Buffer[]): Buffer => tlv(0xa0 | n, ...contents);
export const contextPrimitive = (n: number, value: Buffer): Buffer => tlv(0x80 | n, value);
export const ia5String = (text: string): Buffer => tlv(0x16, Buffer.from(text, "latin1"));
export const utf8String = (text: string): Buffer => tlv(0x0c, Buffer.from(text, "utf8"));
export const BOOLEAN_TRUE: Buffer = Buffer.from([0x01, 0x01, 0xff]);
export const BOOLEAN_FALSE: Buffer = Buffer.from([0x01, 0x01, 0x00]);
export const NULL: Buffer = Buffer.from([0x05, 0x00]);
export const boolean = (value: boolean): Buffer => (value ? BOOLEAN_TRUE : BOOLEAN_FALSE);

/** A BIT STRING; for named-bit lists pass the count of unused trailing bits, which must be zero-filled. */
export function bitString(value: Buffer, unusedBits = 0): Buffer {
  if (!Number.isInteger(unusedBits) || unusedBits < 0 || unusedBits > 7 || (value.length === 0 && unusedBits !== 0)) {
    throw new MandateError("INVALID_ARGUMENT", `bad BIT STRING unused-bits count ${unusedBits}`);
  }
  return tlv(0x03, Buffer.from([unusedBits]), value);
}

/**
 * A non-negative INTEGER from big-endian magnitude bytes: leading zero octets are
 * dropped (DER minimality) and 0x00 is prepended when the top bit is set, so the value
 * is exactly the magnitude — no bit is given up to keep the sign positive.
 */
export function positiveInteger(magnitude: Buffer): Buffer {
  let start = 0;
  while (start < magnitude.length - 1 && magnitude[start] === 0) start++;
  const bytes = magnitude.length === 0 ? Buffer.from([0]) : magnitude.subarray(start);
  return bytes[0]! & 0x80 ? tlv(0x02, Buffer.from([0]), bytes) : tlv(0x02, bytes);
}

/** A small non-negative INTEGER (versions, path lengths). */
export function integer(value: number): Buffer {
  if (!Number.isSafeInteger(value) || value < 0) throw new MandateError("INVALID_ARGUMENT", `cannot encode INTEGER ${value}`);
  const bytes: number[] = [];
  let rest = value;
  do {
    bytes.unshift(rest & 0xff);
    rest = Math.floor(rest / 256);
  } while (rest > 0);
  return positiveInteger(Buffer.from(bytes));
}

const OID_TEXT = /^[0-2]\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

/** Encodes a dotted OID. Meant for module-level constants: encode once, reuse the bytes. */
export function oid(dotted: string): Buffer {
  if (!OID_TEXT.test(dotted)) throw new MandateError("INVALID_ARGUMENT", `not a dotted OID: ${JSON.stringify(dotted)}`);
  const arcs = dotted.split(".").map(Number);
  if (arcs[0]! < 2 && arcs[1]! > 39) throw new MandateError("INVALID_ARGUMENT", `OID ${dotted}: second arc must be below 40 under 0 and 1`);
  if (arcs.some((arc) => !Number.isSafeInteger(arc))) throw new MandateError("INVALID_ARGUMENT", `OID ${dotted}: arc too large`);
  const body: number[] = [];
  for (const arc of [arcs[0]! * 40 + arcs[1]!, ...arcs.slice(2)]) {
    const chunk: number[] = [arc % 128];
    let rest = Math.floor(arc / 128);
    while (rest > 0) {
      chunk.unshift((rest % 128) | 0x80);
      rest = Math.floor(rest / 128);
    }
    body.push(...chunk);
  }
  return tlv(0x06, Buffer.from(body));
}

const pad2 = (n: number): string => (n < 10 ? `0${n}` : `${n}`);

function checkedDate(date: Date, minYear: number, maxYear: number, form: string): number {
  const year = date.getUTCFullYear();
  if (Number.isNaN(year) || year < minYear || year > maxYear) throw new MandateError("INVALID_ARGUMENT", `cannot encode ${String(date)} as ${form}`);
  return year;
}

// RFC 5280 forbids fractional seconds, so sub-second precision is dropped, not rounded.
function monthToSecond(date: Date): string {
  return `${pad2(date.getUTCMonth() + 1)}${pad2(date.getUTCDate())}${pad2(date.getUTCHours())}${pad2(date.getUTCMinutes())}${pad2(date.getUTCSeconds())}Z`;
}

export function utcTime(date: Date): Buffer {
  const year = checkedDate(date, 1950, 2049, "UTCTime");
  return tlv(0x17, Buffer.from(`${pad2(year % 100)}${monthToSecond(date)}`, "latin1"));
}

export function generalizedTime(date: Date): Buffer {
  const year = checkedDate(date, 0, 9999, "GeneralizedTime");
  return tlv(0x18, Buffer.from(`${String(year).padStart(4, "0")}${monthToSecond(date)}`, "latin1"));
}

/** RFC 5280 §4.1.2.5: UTCTime for 1950 through 2049, GeneralizedTime outside that range. */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  return year >= 1950 && year <= 2049 ? utcTime(date) : generalizedTime(date);
}
