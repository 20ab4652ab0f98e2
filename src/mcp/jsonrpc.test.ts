import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkRequestHeaders, decodeHeaderValue, encodeHeaderValue, paramHeadersOf, requestHeadersFor } from "./headers.js";
import { type JsonRpcRequest, RpcError, messageBytes, nestingDepthExceeds, parseMessage, serializeMessage } from "./jsonrpc.js";

const id = fc.oneof(fc.string({ maxLength: 256 }), fc.integer());
const json = fc.jsonValue({ maxDepth: 6 });
const params = fc.dictionary(fc.string({ maxLength: 12 }), json, { maxKeys: 6 });

describe("JSON-RPC parser", () => {
  it("classifies every well-formed message and keeps every field, unknown ones and _meta included", () => {
    fc.assert(
      fc.property(id, fc.string({ minLength: 1, maxLength: 64 }), params, fc.dictionary(fc.string({ maxLength: 8 }).filter((k) => !["jsonrpc", "id", "method", "params", "result", "error"].includes(k)), json, { maxKeys: 3 }), (i, method, p, extra) => {
        const message = { ...extra, jsonrpc: "2.0", id: i, method, params: { ...p, _meta: { "io.example/x": 1 } } };
        const parsed = parseMessage(JSON.stringify(message));
        expect(parsed.kind).toBe("request");
        expect(parsed.message).toEqual(JSON.parse(JSON.stringify(message)));
      }),
    );
  });

  it("never throws anything but RpcError on arbitrary input, text or JSON", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), json.map((v) => JSON.stringify(v) ?? "null"), fc.uint8Array().map((b) => Buffer.from(b).toString("latin1"))), (text) => {
        try {
          parseMessage(text);
        } catch (error) {
          expect(error).toBeInstanceOf(RpcError);
          expect([-32700, -32600]).toContain((error as RpcError).code);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("tells requests, notifications and responses apart, and refuses ambiguous shapes", () => {
    expect(parseMessage('{"jsonrpc":"2.0","method":"notifications/initialized"}').kind).toBe("notification");
    expect(parseMessage('{"jsonrpc":"2.0","id":3,"result":{}}').kind).toBe("response");
    expect(parseMessage('{"jsonrpc":"2.0","id":null,"error":{"code":-1,"message":"x"}}').kind).toBe("response");
    for (const bad of ['{"jsonrpc":"2.0","id":3,"result":{},"error":{"code":1,"message":"x"}}', '{"jsonrpc":"2.0","id":3}', '{"jsonrpc":"2.0","id":1.5,"method":"x"}', '{"jsonrpc":"2.0","id":1,"method":"x","result":{}}', '{"jsonrpc":"2.0","id":1,"error":{"code":"x","message":"y"}}']) {
      expect(() => parseMessage(bad), bad).toThrow(RpcError);
    }
    expect(() => parseMessage("x".repeat(100), 50)).toThrow(/limit is 50/);
  });
});

describe("2026-07-28 header/body consistency", () => {
  const base = (name: string, args: Record<string, unknown> = {}): JsonRpcRequest => ({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name, arguments: args, _meta: { "io.modelcontextprotocol/protocolVersion": "2026-07-28" } } });
  const lookup = (headers: Record<string, string>) => (n: string) => headers[n];

  it("encodes and decodes any value losslessly (the base64 sentinel where needed)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (value) => {
        const encoded = encodeHeaderValue(value);
        expect(/^[\x20-\x7e\t]*$/.test(encoded)).toBe(true);
        expect(decodeHeaderValue(encoded)).toBe(value);
      }),
    );
  });

  it("headers derived from a body always pass the check; any other Mcp-Name is a mismatch", () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 40, unit: "binary" }), fc.string({ minLength: 1, maxLength: 40, unit: "binary" }), (name, other) => {
        const message = base(name);
        const headers = requestHeadersFor(message);
        expect(() => checkRequestHeaders(message, lookup(headers))).not.toThrow();
        if (other !== name) {
          expect(() => checkRequestHeaders(message, lookup({ ...headers, "mcp-name": encodeHeaderValue(other) }))).toThrow(expect.objectContaining({ code: -32020 }));
        }
      }),
    );
  });

  it("checks Mcp-Param-* against the pinned x-mcp-header declarations", () => {
    const schema = { type: "object", properties: { region: { type: "string", "x-mcp-header": "Region" }, limit: { type: "integer", "x-mcp-header": "Limit" }, nested: { type: "object", properties: { zone: { type: "string", "x-mcp-header": "Zone" } } } } };
    const { headers: decls, invalid } = paramHeadersOf(schema);
    expect(invalid).toBeUndefined();
    expect(decls.map((d) => d.header).sort()).toEqual(["Limit", "Region", "Zone"]);
    fc.assert(
      fc.property(fc.string({ maxLength: 30, unit: "binary" }), fc.integer({ min: -1000, max: 1000 }), fc.string({ maxLength: 30, unit: "binary" }), (region, limit, zone) => {
        const message = base("query", { region, limit, nested: { zone } });
        const headers = requestHeadersFor(message, decls);
        expect(() => checkRequestHeaders(message, lookup(headers), decls)).not.toThrow();
        const { "mcp-param-region": _drop, ...withoutRegion } = headers;
        expect(() => checkRequestHeaders(message, lookup(withoutRegion), decls)).toThrow(expect.objectContaining({ code: -32020 }));
        expect(() => checkRequestHeaders(message, lookup({ ...headers, "mcp-param-limit": String(limit + 1) }), decls)).toThrow(expect.objectContaining({ code: -32020 }));
      }),
    );
    expect(paramHeadersOf({ type: "object", properties: { a: { type: "number", "x-mcp-header": "A" } } }).invalid).toMatch(/number/);
    expect(paramHeadersOf({ type: "object", properties: { a: { type: "string", "x-mcp-header": "A" }, b: { type: "string", "x-mcp-header": "a" } } }).invalid).toMatch(/twice/);
  });
});

/** The depth of a JSON value, counted the way the nesting limit counts it (a bare object or array is 1). */
function depthOf(value: unknown): number {
  if (typeof value !== "object" || value === null) return 0;
  const children = Array.isArray(value) ? value : Object.values(value);
  return 1 + children.reduce<number>((max, child) => Math.max(max, depthOf(child)), 0);
}

describe("message sizes and nesting", () => {
  it("nestingDepthExceeds agrees with a recursive depth count for every value and limit", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 8 }), fc.integer({ min: 0, max: 10 }), (value, limit) => {
        expect(nestingDepthExceeds(value, limit)).toBe(depthOf(value) > limit);
      }),
    );
  });

  it("a parsed or written message's size is the bytes read or written; any other value is serialized", () => {
    fc.assert(
      fc.property(id, params, fc.constantFrom("", " ", "\n  "), (requestId, p, space) => {
        const text = JSON.stringify({ jsonrpc: "2.0", id: requestId, method: "tools/call", params: p }, null, space);
        const { message } = parseMessage(Buffer.from(text));
        expect(messageBytes(message)).toBe(Buffer.byteLength(text));
        const copy = { ...message };
        expect(messageBytes(copy)).toBe(Buffer.byteLength(JSON.stringify(copy)));
        const written = serializeMessage(copy);
        expect(messageBytes(copy)).toBe(Buffer.byteLength(written));
      }),
    );
  });
});
