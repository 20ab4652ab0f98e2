import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { FrameReader, ProtocolError, frame, parseErrorFields, errorResponse, readStartupPacket, rowsFromCommandTag, startupMessage } from "./protocol.js";

const frames = fc.array(fc.record({ type: fc.constantFrom("Q", "P", "B", "E", "S", "D", "C", "d"), body: fc.uint8Array({ maxLength: 300 }) }), { maxLength: 20 });

describe("FrameReader", () => {
  test("any split of a stream of frames yields the same frames", () => {
    fc.assert(
      fc.property(frames, fc.array(fc.nat(), { maxLength: 10 }), (messages, cuts) => {
        const stream = Buffer.concat(messages.map((m) => frame(m.type, Buffer.from(m.body))));
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const reader = new FrameReader();
        const got: { type: string; body: Buffer }[] = [];
        let last = 0;
        for (const p of [...points, stream.length]) {
          got.push(...reader.push(stream.subarray(last, p)));
          last = p;
        }
        expect(got.map((f) => [f.type, Buffer.from(f.body).toString("hex")])).toEqual(messages.map((m) => [m.type, Buffer.from(m.body).toString("hex")]));
        expect(reader.pendingBytes).toBe(0);
      }),
    );
  });

  test("arbitrary bytes either frame or throw a ProtocolError, never anything else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          new FrameReader(1000).push(Buffer.from(bytes));
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
    );
  });

  test("a length beyond the limit is refused before buffering the body", () => {
    const header = Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]);
    expect(() => new FrameReader(1024).push(header)).toThrow(/exceeds the limit/);
  });
});

describe("startup packets", () => {
  test("round trip of startup parameters", () => {
    fc.assert(
      fc.property(fc.dictionary(fc.stringMatching(/^[a-z_]{1,12}$/), fc.stringMatching(/^[^\0]{0,20}$/), { maxKeys: 6 }), (params) => {
        const read = readStartupPacket(startupMessage(params));
        expect(read?.packet.kind).toBe("startup");
        if (read?.packet.kind === "startup") expect(Object.fromEntries(read.packet.params)).toEqual(params);
      }),
    );
  });

  test("arbitrary bytes parse, wait for more, or throw a ProtocolError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          readStartupPacket(Buffer.from(bytes));
        } catch (error) {
          expect(error).toBeInstanceOf(ProtocolError);
        }
      }),
    );
  });
});

test("error fields survive a round trip", () => {
  const fields = parseErrorFields(errorResponse({ severity: "ERROR", code: "42501", message: "no", detail: "d", hint: "h" }).subarray(5));
  expect(Object.fromEntries(fields)).toMatchObject({ S: "ERROR", C: "42501", M: "no", D: "d", H: "h" });
});

test("row counts from command tags", () => {
  expect(rowsFromCommandTag("INSERT 0 5")).toBe(5);
  expect(rowsFromCommandTag("SELECT 10")).toBe(10);
  expect(rowsFromCommandTag("DELETE 0")).toBe(0);
  expect(rowsFromCommandTag("CREATE TABLE")).toBeUndefined();
});
