import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadWorkloadApi } from "./proto.js";
import { fromProtoStruct, toProtoStruct } from "./struct.js";

const { client } = loadWorkloadApi();
const method = client.service.ValidateJWTSVID!;
const roundTrip = (claims: Record<string, unknown>) =>
  fromProtoStruct((method.responseDeserialize(method.responseSerialize({ spiffe_id: "x", claims: toProtoStruct(claims) })) as { claims: never }).claims);

describe("google.protobuf.Struct claims", () => {
  it("puts Value members on the standard's field numbers", () => {
    // claims=2 { fields=1 { key=1 "a", value=2 { string_value=3 "b" } } }
    const bytes = method.responseSerialize({ claims: toProtoStruct({ a: "b" }) });
    expect([...bytes]).toEqual([0x12, 10, 0x0a, 8, 0x0a, 1, 0x61, 0x12, 3, 0x1a, 1, 0x62]);
    // number_value=2 (double), bool_value=4, null_value=1
    expect([...method.responseSerialize({ claims: toProtoStruct({ a: true }) })].slice(-2)).toEqual([0x20, 1]);
    expect([...method.responseSerialize({ claims: toProtoStruct({ a: null }) })].slice(-2)).toEqual([0x08, 0]);
    expect(method.responseSerialize({ claims: toProtoStruct({ a: 1.5 }) }).subarray(-9)).toEqual(Buffer.concat([Buffer.from([0x11]), Buffer.from(new Float64Array([1.5]).buffer)]));
  });

  it("round-trips any JSON claims set through the wire", () => {
    const json = fc.jsonValue({ maxDepth: 4 });
    fc.assert(
      fc.property(fc.dictionary(fc.string().filter((key) => key !== "__proto__"), json), (claims) => {
        // Compared as JSON text: -0 survives the double encoding, and JSON cannot tell it from 0.
        expect(JSON.stringify(roundTrip(claims))).toBe(JSON.stringify(claims));
      }),
      { numRuns: 300 },
    );
  });

  it("keeps real-world JWT claims intact", () => {
    const claims = { sub: "spiffe://example.org/w", aud: ["a", "b"], exp: 1_900_000_000, iat: 1_800_000_000, nested: { ok: true, none: null } };
    expect(roundTrip(claims)).toEqual(claims);
  });

  it("refuses absurdly deep nesting instead of overflowing the stack", () => {
    let deep: Record<string, unknown> = {};
    for (let i = 0; i < 100; i++) deep = { d: deep };
    expect(() => toProtoStruct(deep)).toThrow(/nested too deeply/);
  });
});
