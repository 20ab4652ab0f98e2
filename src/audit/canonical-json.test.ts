import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "./canonical-json.js";

describe("RFC 8785 canonical JSON", () => {
  it("matches the RFC's examples", () => {
    // RFC 8785 §3.2.2 number serialization samples and §3.2.3 property ordering.
    expect(canonicalJson({ numbers: [333333333.33333329, 1e30, 4.5, 2e-3, 0.000000000000000000000000001] })).toBe('{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}');
    expect(canonicalJson({ "\u20ac": "Euro Sign", "\r": "Carriage Return", "\ufb33": "Hebrew Letter Dalet With Dagesh", "1": "One", "\ud83d\ude00": "Emoji: Grinning Face", "\u0080": "Control", "\u00f6": "Latin Small Letter O With Diaeresis" })).toBe(
      '{"\\r":"Carriage Return","1":"One","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis","\u20ac":"Euro Sign","\ud83d\ude00":"Emoji: Grinning Face","\ufb33":"Hebrew Letter Dalet With Dagesh"}',
    );
    expect(canonicalJson({ b: [true, null, "x\n"], a: { d: 1, c: -0 } })).toBe('{"a":{"c":0,"d":1},"b":[true,null,"x\\n"]}');
  });

  it("is stable under key order and round-trips through JSON.parse (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const canonical = canonicalJson(value);
        expect(canonicalJson(JSON.parse(canonical))).toBe(canonical);
        expect(JSON.parse(canonical)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
      { numRuns: 500 },
    );
  });

  it("gives exactly what the straightforward entries/sort/join form gives (property)", () => {
    const reference = (value: unknown): string => {
      if (typeof value !== "object" || value === null) return value === undefined ? "null" : JSON.stringify(value);
      if (Array.isArray(value)) return `[${value.map((item) => (item === undefined ? "null" : reference(item))).join(",")}]`;
      const entries = Object.entries(value).filter(([, v]) => v !== undefined);
      entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${reference(v)}`).join(",")}}`;
    };
    // Objects with undefined members and arrays with undefined items, as events built in code have.
    const withUndefined = fc.letrec((tie) => ({
      node: fc.oneof({ depthSize: "small" }, fc.jsonValue({ maxDepth: 1 }), fc.constant(undefined), fc.array(tie("node"), { maxLength: 4 }), fc.dictionary(fc.string(), tie("node"), { maxKeys: 5 })),
    })).node;
    fc.assert(
      // An event is an object; undefined alone has no JSON form at all.
      fc.property(fc.dictionary(fc.string(), withUndefined), (value) => {
        expect(canonicalJson(value)).toBe(reference(value));
      }),
      { numRuns: 1000 },
    );
  });

  it("refuses values JSON cannot carry", () => {
    expect(() => canonicalJson(Number.NaN)).toThrow("NaN");
    expect(() => canonicalJson(10n)).toThrow("bigint");
  });
});
