import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isMandateError } from "../../errors/index.js";
import { DerReader, TAG, decodeOid, decodeTime } from "./reader.js";
import { encodeLength, oid, positiveInteger, sequence, time, tlv } from "./writer.js";

describe("DER", () => {
  it("round-trips lengths, OIDs, integers and times", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 70_000 }), (bytes) => {
        const element = new DerReader(tlv(0x04, Buffer.from(bytes)), "INVALID_CERTIFICATE", "test").read(0x04);
        expect(Buffer.compare(element.value, Buffer.from(bytes))).toBe(0);
      }),
      { numRuns: 50 },
    );
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 2 ** 40 }), { minLength: 1, maxLength: 8 }), fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 39 }), (arcs, a, b) => {
        const dotted = [a, b, ...arcs].join(".");
        const element = new DerReader(oid(dotted), "INVALID_CERTIFICATE", "test").read(TAG.OID);
        expect(decodeOid(element.value)).toBe(dotted);
      }),
    );
    expect(positiveInteger(Buffer.from([0x80])).toString("hex")).toBe("02020080");
    expect(positiveInteger(Buffer.from([0, 0, 1])).toString("hex")).toBe("020101");
    fc.assert(
      fc.property(fc.date({ min: new Date("1990-01-01"), max: new Date("2200-01-01"), noInvalidDate: true }), (d) => {
        const seconds = new Date(Math.floor(d.getTime() / 1000) * 1000);
        const reader = new DerReader(time(seconds), "INVALID_CERTIFICATE", "test");
        const element = reader.read();
        expect(element.tag).toBe(seconds.getUTCFullYear() < 2050 ? TAG.UTC_TIME : TAG.GENERALIZED_TIME);
        expect(decodeTime(element, reader).getTime()).toBe(seconds.getTime());
      }),
    );
    expect(encodeLength(0x80).toString("hex")).toBe("8180");
  });

  it("rejects non-DER lengths and trailing bytes", () => {
    const read = (hex: string) => () => {
      const r = new DerReader(Buffer.from(hex, "hex"), "INVALID_CSR", "CSR");
      r.read();
      r.end();
    };
    expect(read("3080")).toThrow("indefinite");
    expect(read("04817f" + "00".repeat(0x7f))).toThrow("minimally");
    expect(read("0402aa")).toThrow("past the end");
    expect(read("0401aa00")).toThrow("trailing");
    expect(read(sequence(Buffer.alloc(0)).toString("hex"))).not.toThrow();
  });

  it("throws only MandateErrors on arbitrary bytes (property)", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          const reader = new DerReader(Buffer.from(bytes), "INVALID_CSR", "CSR");
          while (!reader.done) {
            const el = reader.read();
            if (el.tag & 0x20) reader.child(el).read();
          }
        } catch (error) {
          expect(isMandateError(error, "INVALID_CSR")).toBe(true);
        }
      }),
      { numRuns: 3000 },
    );
  });
});
