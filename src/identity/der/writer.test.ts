import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DerReader, TAG, decodeOid } from "./reader.js";
import { BOOLEAN_TRUE, bitString, boolean, contextConstructed, contextPrimitive, encodeLength, generalizedTime, integer, oid, positiveInteger, sequence, set, time, tlv, utcTime } from "./writer.js";

const hex = (b: Buffer) => b.toString("hex");
const read = (b: Buffer) => new DerReader(b, "INVALID_CERTIFICATE", "test");

describe("DER writer", () => {
  it("encodes lengths in the shortest form", () => {
    expect(hex(encodeLength(0))).toBe("00");
    expect(hex(encodeLength(0x7f))).toBe("7f");
    expect(hex(encodeLength(0x80))).toBe("8180");
    expect(hex(encodeLength(0xff))).toBe("81ff");
    expect(hex(encodeLength(0x100))).toBe("820100");
    expect(hex(encodeLength(0x10000))).toBe("83010000");
    expect(hex(encodeLength(0x1000000))).toBe("8401000000");
    expect(() => encodeLength(-1)).toThrow();
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70_000 }), (bytes) => {
        const element = read(tlv(0x04, Buffer.from(bytes))).read(0x04);
        expect(element.value.equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 40 },
    );
  });

  it("encodes constructed and tagged elements", () => {
    expect(hex(sequence())).toBe("3000");
    expect(hex(set(Buffer.from("0500", "hex")))).toBe("31020500");
    expect(hex(contextConstructed(3, sequence()))).toBe("a3023000");
    expect(hex(contextPrimitive(6, Buffer.from("a")))).toBe("860161");
    expect(hex(boolean(true))).toBe(hex(BOOLEAN_TRUE));
    expect(hex(boolean(false))).toBe("010100");
    expect(hex(bitString(Buffer.from([0x80]), 7))).toBe("03020780");
    expect(hex(bitString(Buffer.from([0xab])))).toBe("030200ab");
    expect(() => bitString(Buffer.alloc(0), 3)).toThrow();
  });

  it("encodes non-negative INTEGERs minimally, padding a set top bit instead of clearing it", () => {
    expect(hex(positiveInteger(Buffer.from([0x80])))).toBe("02020080");
    expect(hex(positiveInteger(Buffer.from([0, 0, 1])))).toBe("020101");
    expect(hex(positiveInteger(Buffer.from([0, 0x80])))).toBe("02020080");
    expect(hex(positiveInteger(Buffer.alloc(3)))).toBe("020100");
    expect(hex(positiveInteger(Buffer.alloc(0)))).toBe("020100");
    expect(hex(integer(2))).toBe("020102");
    expect(hex(integer(128))).toBe("02020080");
    expect(hex(integer(65536))).toBe("0203010000");
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 20 }), (bytes) => {
        const magnitude = Buffer.from(bytes);
        const content = read(positiveInteger(magnitude)).readIntegerBytes();
        expect(content[0]! & 0x80).toBe(0);
        expect(BigInt(`0x${hex(content)}`)).toBe(BigInt(`0x${hex(magnitude)}`));
      }),
    );
  });

  it("encodes OIDs that the reader decodes back, and refuses malformed dotted text", () => {
    expect(hex(oid("1.2.840.10045.4.3.2"))).toBe("06082a8648ce3d040302");
    expect(hex(oid("2.999.3"))).toBe("0603883703");
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 40 }), { maxLength: 8 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), (arcs, a, b) => {
        const dotted = [a, b, ...arcs].join(".");
        expect(decodeOid(read(oid(dotted)).read(TAG.OID).value)).toBe(dotted);
      }),
    );
    for (const bad of ["", "1", "3.1", "1.40", "1.2.", "1..2", "1.02", "a.b"]) expect(() => oid(bad), bad).toThrow();
  });

  it("writes UTCTime through 2049 and GeneralizedTime from 2050 (RFC 5280 §4.1.2.5), dropping sub-seconds", () => {
    expect(time(new Date("2049-12-31T23:59:59.999Z")).toString("latin1").slice(2)).toBe("491231235959Z");
    expect(time(new Date("2049-12-31T23:59:59Z"))[0]).toBe(TAG.UTC_TIME);
    expect(time(new Date("2050-01-01T00:00:00Z")).toString("latin1").slice(2)).toBe("20500101000000Z");
    expect(time(new Date("2050-01-01T00:00:00Z"))[0]).toBe(TAG.GENERALIZED_TIME);
    expect(time(new Date("1949-12-31T23:59:59Z"))[0]).toBe(TAG.GENERALIZED_TIME);
    expect(() => utcTime(new Date("2050-01-01T00:00:00Z"))).toThrow("UTCTime");
    expect(() => generalizedTime(new Date(Number.NaN))).toThrow();
    fc.assert(
      fc.property(fc.date({ min: new Date("1950-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z"), noInvalidDate: true }), (d) => {
        const seconds = new Date(Math.floor(d.getTime() / 1000) * 1000);
        const element = read(time(d)).read();
        expect(element.tag).toBe(seconds.getUTCFullYear() < 2050 ? TAG.UTC_TIME : TAG.GENERALIZED_TIME);
        expect(read(element.bytes).readTime().getTime()).toBe(seconds.getTime());
      }),
      { numRuns: 500 },
    );
  });
});
