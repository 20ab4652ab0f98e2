import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isMandateError } from "../../errors/index.js";
import { DerReader, TAG, decodeOid } from "./reader.js";
import { sequence, tlv } from "./writer.js";

const reader = (hex: string) => new DerReader(Buffer.from(hex, "hex"), "INVALID_CSR", "CSR");
const readAll = (hex: string) => () => {
  const r = reader(hex);
  r.read();
  r.end();
};

describe("DER reader", () => {
  it("returns views with tag, header length, value and the whole element", () => {
    const input = Buffer.concat([tlv(0x04, Buffer.alloc(300, 7)), Buffer.from("0500", "hex")]);
    const r = new DerReader(input, "INVALID_CERTIFICATE", "test");
    const element = r.read(TAG.OCTET_STRING);
    expect(element).toMatchObject({ tag: 0x04, headerLength: 4 });
    expect(element.value.length).toBe(300);
    expect(element.bytes.length).toBe(304);
    // A view, not a copy: readers never allocate element storage.
    expect(element.bytes.buffer).toBe(input.buffer);
    expect(r.read(TAG.NULL).bytes.toString("hex")).toBe("0500");
    r.end();
  });

  it("rejects indefinite, overlong and non-minimal lengths, truncation and trailing bytes with the caller's code", () => {
    expect(readAll("3080")).toThrow("indefinite");
    expect(readAll("04817f" + "00".repeat(0x7f))).toThrow("minimally");
    expect(readAll("0482007f" + "00".repeat(0x7f))).toThrow("minimally");
    expect(readAll("048500000000ff")).toThrow("too large");
    expect(readAll("0402aa")).toThrow("past the end");
    expect(readAll("0482")).toThrow("truncated length");
    expect(readAll("04")).toThrow("truncated element");
    expect(readAll("0401aa00")).toThrow("trailing");
    expect(readAll("1f0100")).toThrow("high tag");
    expect(readAll(sequence().toString("hex"))).not.toThrow();
    try {
      readAll("3080")();
    } catch (error) {
      expect(isMandateError(error, "INVALID_CSR")).toBe(true);
      expect((error as Error).message).toMatch(/^malformed CSR: /);
    }
  });

  it("checks the expected tag and refuses to enter primitive elements", () => {
    expect(() => reader("0500").read(TAG.SEQUENCE)).toThrow("expected tag 0x30, found 0x5");
    expect(() => reader("0400").enter(0x04)).toThrow("not constructed");
    expect(reader("0500").readOptional(TAG.SEQUENCE)).toBeUndefined();
  });

  it("limits nesting depth", () => {
    let nested: Buffer = Buffer.alloc(0);
    for (let i = 0; i < 40; i++) nested = sequence(nested);
    let r = new DerReader(nested, "INVALID_CERTIFICATE", "test");
    expect(() => {
      for (;;) r = r.enter(TAG.SEQUENCE);
    }).toThrow("nested too deeply");
  });

  it("reads strict BOOLEANs, INTEGERs and BIT STRINGs", () => {
    expect(reader("0101ff").readBoolean()).toBe(true);
    expect(reader("010100").readBoolean()).toBe(false);
    expect(() => reader("010101").readBoolean()).toThrow("not DER");
    expect(() => reader("010100").readDefaultFalse()).toThrow("omitted");
    expect(reader("020102").readSmallInteger()).toBe(2);
    expect(() => reader("02020001").readSmallInteger()).toThrow("minimally");
    expect(() => reader("0202ff80").readIntegerBytes()).toThrow("minimally");
    expect(() => reader("0200").readIntegerBytes()).toThrow("empty");
    expect(() => reader("0201ff").readSmallInteger()).toThrow("negative");
    expect(reader("030200ab").readBitString().bits.toString("hex")).toBe("ab");
    expect(() => reader("030207ab").readBitString()).toThrow("whole octets");
    expect(reader("03020780").readBitString(true)).toMatchObject({ unusedBits: 7 });
    expect(() => reader("03020781").readBitString(true)).toThrow("padding");
    expect(() => reader("0300").readBitString()).toThrow("unused-bits");
    expect(() => reader("030108").readBitString(true)).toThrow("unused-bits");
  });

  it("decodes OIDs and refuses non-minimal or truncated arcs", () => {
    expect(decodeOid(Buffer.from("2a864886f70d01010b", "hex"))).toBe("1.2.840.113549.1.1.11");
    expect(decodeOid(Buffer.from("8837", "hex"))).toBe("2.999");
    expect(() => decodeOid(Buffer.from("2a80863f", "hex"), "INVALID_CERTIFICATE")).toThrow(expect.objectContaining({ code: "INVALID_CERTIFICATE", message: expect.stringContaining("minimally") }));
    expect(() => decodeOid(Buffer.from("2a86", "hex"))).toThrow("truncated");
    expect(() => decodeOid(Buffer.alloc(0))).toThrow("empty");
    expect(() => decodeOid(Buffer.from("2affffffffffffffff7f", "hex"))).toThrow("too large");
  });

  it("reads UTCTime and GeneralizedTime strictly, range-checking every field", () => {
    const time = (tag: number, text: string) => new DerReader(tlv(tag, Buffer.from(text, "latin1")), "INVALID_CERTIFICATE", "t").readTime();
    expect(time(TAG.UTC_TIME, "491231235959Z").toISOString()).toBe("2049-12-31T23:59:59.000Z");
    expect(time(TAG.UTC_TIME, "500101000000Z").toISOString()).toBe("1950-01-01T00:00:00.000Z");
    expect(time(TAG.GENERALIZED_TIME, "20500101000000Z").toISOString()).toBe("2050-01-01T00:00:00.000Z");
    expect(time(TAG.GENERALIZED_TIME, "00500101000000Z").getUTCFullYear()).toBe(50);
    expect(time(TAG.UTC_TIME, "240229120000Z").toISOString()).toBe("2024-02-29T12:00:00.000Z");
    for (const bad of ["230229120000Z", "241301000000Z", "240100000000Z", "240101240000Z", "240101006000Z", "240101000060Z", "2401010000Z", "240101000000+0100", "24010100000aZ", "240101000000.5Z"]) {
      expect(() => time(TAG.UTC_TIME, bad), bad).toThrow(expect.objectContaining({ code: "INVALID_CERTIFICATE" }));
    }
    expect(() => time(TAG.GENERALIZED_TIME, "20240101000000.123Z")).toThrow("Z form");
    expect(() => time(TAG.OCTET_STRING, "240101000000Z")).toThrow("UTCTime or GeneralizedTime");
  });

  it("throws only MandateErrors with the caller's code on arbitrary bytes (property)", () => {
    const walk = (r: DerReader): void => {
      while (!r.done) {
        const element = r.read();
        if (element.tag & 0x20) walk(r.child(element));
        else if (element.tag === TAG.OID) r.wrapped(element) && decodeOid(element.value, "INVALID_CSR");
        else if (element.tag === TAG.UTC_TIME || element.tag === TAG.GENERALIZED_TIME) new DerReader(element.bytes, "INVALID_CSR", "x").readTime();
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), (bytes) => {
        try {
          walk(new DerReader(Buffer.from(bytes), "INVALID_CSR", "CSR"));
        } catch (error) {
          expect(isMandateError(error, "INVALID_CSR"), String(error)).toBe(true);
        }
      }),
      { numRuns: 5000 },
    );
  });
});
