import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ProxyHarness, eventually, startProxyHarness } from "../../test/helpers/mcp.js";
import { startModernServer } from "../../test/helpers/modern-server.js";

const MISBEHAVING = fileURLToPath(new URL("../../test/fixtures/misbehaving-server.mjs", import.meta.url));

async function raw(url: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any; headers: Headers }> {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, body });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* keep text */
  }
  return { status: response.status, body: parsed, headers: response.headers };
}

const init = (id = 1) => JSON.stringify({ jsonrpc: "2.0", id, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } } });

describe("hostile input: clear JSON-RPC errors, no crash, bounded, recorded", () => {
  let h: ProxyHarness;
  let modern: { url: string; close(): Promise<void> };

  beforeAll(async () => {
    modern = await startModernServer();
    h = await startProxyHarness({ requestTimeoutMs: 1500, maxSessionsPerCaller: 100, maxMessageBytes: 256 * 1024 });
    await h.addServer({ name: "bad", command: ["node", MISBEHAVING] });
    await h.addServer({ name: "modern", url: modern.url });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await modern?.close();
  });

  it("malformed JSON, non-objects, batches and wrong versions get JSON-RPC errors, and are audited", async () => {
    const url = `${h.url}/mcp/modern`;
    const cases: [string, number][] = [
      ["{not json", -32700],
      ["[]", -32600],
      [`[${init()}]`, -32600],
      ['"just a string"', -32600],
      ['{"jsonrpc":"1.0","id":1,"method":"ping"}', -32600],
      ['{"jsonrpc":"2.0","id":{"nested":true},"method":"ping"}', -32600],
      ['{"jsonrpc":"2.0","id":1,"method":"ping","params":[1,2]}', -32600],
      [`{"jsonrpc":"2.0","id":1,"method":"ping","params":${"{\"a\":".repeat(100)}1${"}".repeat(100)}}`, -32600],
    ];
    for (const [body, code] of cases) {
      const answer = await raw(url, body);
      expect(answer.status, body).toBe(400);
      expect(answer.body.error.code, body).toBe(code);
      expect(answer.body.id).toBe(null);
    }
    await eventually(async () => expect((await h.audit.list({ type: "mcp.request" })).filter((e) => e.code === "MALFORMED_REQUEST").length).toBeGreaterThanOrEqual(cases.length));
  });

  it("an oversized message is refused before it is parsed", async () => {
    const big = JSON.stringify({ jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "echo", arguments: { text: "x".repeat(300 * 1024) } } });
    const answer = await raw(`${h.url}/mcp/modern`, big);
    expect(answer.status).toBe(413);
    expect(answer.body.error.code).toBe(-32600);
  });

  it("unknown methods, path tricks in tool names and argument injection are refused or contained", async () => {
    const client = new Client({ name: "hostile", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${h.url}/mcp/modern`)));
    try {
      await expect(client.request({ method: "admin/shutdown", params: {} }, (await import("@modelcontextprotocol/sdk/types.js")).EmptyResultSchema)).rejects.toThrow(/-32601|not an MCP method/);
      for (const name of ["../secret-tool", "echo/../../secret-tool", "mcp:modern/secret-tool", "echo\u0000", "", "a".repeat(129)]) {
        await expect(client.callTool({ name, arguments: {} }), name).rejects.toThrow(/invalid tool name/);
      }
      h.gate.requests.length = 0;
      await client.callTool({ name: "echo", arguments: { text: "hi", principal: "admin", action: "mcp.admin", resource: "*", __proto__: { polluted: true } } as never });
      const asked = h.gate.requests.find((r) => r.action === "mcp.tools/call")!;
      // The arguments are data under `args`; they cannot stand in for the request's own fields.
      expect(Object.keys(asked.context!)).toEqual(["args"]);
      expect(asked.action).toBe("mcp.tools/call");
      expect(asked.resource).toMatchObject({ kind: "mcp", server: "modern", item: "tool", name: "echo" });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    } finally {
      await client.close();
    }
  });

  it("an upstream that hangs times out, one that dies mid-call fails the call, and the proxy keeps serving", async () => {
    const client = new Client({ name: "hostile", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${h.url}/mcp/bad`)));
    await client.listTools();
    await expect(client.callTool({ name: "hang", arguments: {} })).rejects.toThrow(/did not answer tools\/call within 1500 ms/);
    expect(await client.callTool({ name: "ok", arguments: {} })).toMatchObject({ content: [{ text: "fine" }] });
    await expect(client.callTool({ name: "die", arguments: {} })).rejects.toThrow(/exited|not running|session/);
    await client.close().catch(() => undefined);
    const again = new Client({ name: "hostile", version: "1" });
    await again.connect(new StreamableHTTPClientTransport(new URL(`${h.url}/mcp/bad`)));
    expect(await again.callTool({ name: "ok", arguments: {} })).toMatchObject({ content: [{ text: "fine" }] });
    await again.close();
    const calls = await eventually(async () => {
      const events = await h.audit.list({ type: "mcp.tool.call" });
      expect(events.filter((e) => e.target?.name === "hang" && e.outcome.status === "error").length).toBeGreaterThan(0);
      return events;
    });
    expect(calls.some((e) => e.target?.name === "hang" && e.code === "INTENT")).toBe(true);
    expect(calls.some((e) => e.target?.name === "die" && e.outcome.status === "error")).toBe(true);
  }, 60_000);

  it("a client opening 1,000 sessions hits a clear limit; memory stays bounded; sessions end with DELETE", async () => {
    const url = `${h.url}/mcp/modern`;
    const before = process.memoryUsage().heapUsed;
    const statuses: number[] = [];
    const sessions: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const answer = await raw(url, init(i), { "x-test-agent": "flooder" });
      statuses.push(answer.status);
      const id = answer.headers.get("mcp-session-id");
      if (id) sessions.push(id);
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(100);
    expect(statuses.filter((s) => s === 429)).toHaveLength(900);
    const refused = await raw(url, init(5000), { "x-test-agent": "flooder" });
    expect(refused.body.error.message).toMatch(/already holds 100 MCP sessions/);
    await eventually(async () => expect((await h.audit.list({ type: "mcp.session.open", limit: 2000 })).filter((e) => e.code === "TOO_MANY_SESSIONS").length).toBeGreaterThanOrEqual(901));
    // Another caller is not starved by the flooder.
    expect((await raw(url, init(1), { "x-test-agent": "someone-else" })).status).toBe(200);
    const grown = process.memoryUsage().heapUsed - before;
    expect(grown).toBeLessThan(100 * 1024 * 1024);
    for (const id of sessions) await fetch(url, { method: "DELETE", headers: { "mcp-session-id": id, "x-test-agent": "flooder" } });
    expect((await raw(url, init(7), { "x-test-agent": "flooder" })).status).toBe(200);
    // Someone else's session id is not found, not hijacked.
    const mine = (await raw(url, init(8), { "x-test-agent": "owner" })).headers.get("mcp-session-id")!;
    const stolen = await raw(url, JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" }), { "mcp-session-id": mine, "x-test-agent": "thief" });
    expect(stolen.status).toBe(404);
  }, 120_000);
});
