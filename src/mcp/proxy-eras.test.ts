import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVERYTHING_BIN, type ProxyHarness, startProxyHarness } from "../../test/helpers/mcp.js";
import { startModernServer } from "../../test/helpers/modern-server.js";

function modernClient(capabilities: Record<string, unknown> = {}) {
  return new ModernClient({ name: "modern-client", version: "2.0.0" }, { capabilities, versionNegotiation: { mode: { pin: "2026-07-28" } } } as never);
}

async function post(url: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  const response = await fetch(url, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers }, body: JSON.stringify(body) });
  const text = await response.text();
  const data = text.startsWith("event:") ? JSON.parse(text.split("\n").find((l) => l.startsWith("data: "))!.slice(6)) : text ? JSON.parse(text) : undefined;
  return { status: response.status, body: data };
}

const envelope = { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}, "io.modelcontextprotocol/clientInfo": { name: "raw", version: "1" } };

describe("both protocol eras, in every combination", () => {
  let h: ProxyHarness;
  let modern: { url: string; close(): Promise<void> };

  beforeAll(async () => {
    modern = await startModernServer();
    h = await startProxyHarness();
    await h.addServer({ name: "modern", url: modern.url });
    await h.addServer({ name: "everything", command: ["node", EVERYTHING_BIN, "stdio"] });
    h.gate.deny.add("mcp:modern/secret-tool");
    h.gate.deny.add("mcp:everything/get-env");
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await modern?.close();
  });

  it("2026-07-28 client → 2026-07-28 server: filtered lists, the same results as a direct connection", async () => {
    const client = modernClient();
    const direct = modernClient();
    await client.connect(new ModernTransport(new URL(`${h.url}/mcp/modern`)));
    await direct.connect(new ModernTransport(new URL(modern.url)));
    try {
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name).sort()).toEqual(["confirm", "echo", "leaky"]);
      expect(tools.tools).toEqual((await direct.listTools()).tools.filter((t) => t.name !== "secret-tool"));
      expect(await client.callTool({ name: "echo", arguments: { text: "hi" } })).toEqual(await direct.callTool({ name: "echo", arguments: { text: "hi" } }));
      await expect(client.callTool({ name: "secret-tool", arguments: {} })).rejects.toThrow(/denied by Mandate/);
    } finally {
      await client.close();
      await direct.close();
    }
  }, 60_000);

  it("2026-07-28 requests: headers must agree with the body (-32020), lists are cacheScope private", async () => {
    const url = `${h.url}/mcp/modern`;
    const list = { jsonrpc: "2.0", id: 1, method: "tools/list", params: { _meta: envelope } };
    const ok = await post(url, list, { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/list" });
    expect(ok.status).toBe(200);
    expect(ok.body.result.cacheScope).toBe("private");
    expect(ok.body.result.tools.map((t: { name: string }) => t.name)).not.toContain("secret-tool");
    const call = { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "secret-tool", arguments: {}, _meta: envelope } };
    // The header claims an allowed tool; the body names the denied one: rejected before policy.
    const lying = await post(url, call, { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "echo" });
    expect(lying.status).toBe(400);
    expect(lying.body.error.code).toBe(-32020);
    const missing = await post(url, call, { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call" });
    expect(missing.body.error.code).toBe(-32020);
    const honest = await post(url, call, { "mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "secret-tool" });
    expect(honest.body.error.code).toBe(-32010);
    const version = await post(url, { ...list, params: { _meta: { ...envelope, "io.modelcontextprotocol/protocolVersion": "2099-01-01" } } }, { "mcp-protocol-version": "2099-01-01", "mcp-method": "tools/list" });
    expect(version.status).toBe(400);
    expect(version.body.error.code).toBe(-32022);
    const discover = await post(url, { jsonrpc: "2.0", id: 3, method: "server/discover", params: { _meta: envelope } }, { "mcp-protocol-version": "2026-07-28", "mcp-method": "server/discover" });
    expect(discover.body.result.supportedVersions).toContain("2026-07-28");
  }, 60_000);

  it("2025-era client → 2026-07-28 server: initialize answered from server/discover, input-required turned into elicitation", async () => {
    const client = new Client({ name: "legacy-client", version: "1.0.0" }, { capabilities: { elicitation: {} } });
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      expect(request.params.message).toBe("Who approves deploy?");
      return { action: "accept", content: { name: "alice" } };
    });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${h.url}/mcp/modern`)));
    try {
      expect(client.getServerVersion()?.name).toBe("modern-test-server");
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).not.toContain("secret-tool");
      expect(await client.callTool({ name: "echo", arguments: { text: "old" } })).toMatchObject({ content: [{ type: "text", text: "echo: old" }] });
      expect(await client.callTool({ name: "confirm", arguments: { action: "deploy" } })).toMatchObject({ content: [{ type: "text", text: "deploy approved by alice" }] });
    } finally {
      await client.close();
    }
  }, 60_000);

  it("2026-07-28 client → 2025-era server: the proxy holds the session; a mid-call request becomes input-required", async () => {
    const client = modernClient({ elicitation: {} });
    client.setRequestHandler("elicitation/create", async () => ({ action: "accept", content: { color: "blue", number: 7, pets: "dogs" } }) as never);
    await client.connect(new ModernTransport(new URL(`${h.url}/mcp/everything`)));
    try {
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).toContain("echo");
      expect(tools.tools.map((t) => t.name)).not.toContain("get-env");
      expect(await client.callTool({ name: "echo", arguments: { message: "new" } })).toMatchObject({ content: [{ type: "text", text: "Echo: new" }] });
      await expect(client.callTool({ name: "get-env", arguments: {} })).rejects.toThrow(/denied by Mandate/);
      // server-everything asks the client mid-call (a 2025-era server→client request); the proxy
      // parks the call and answers the 2026-07-28 client with input-required, then resumes it.
      const elicited = await client.callTool({ name: "trigger-elicitation-request", arguments: {} });
      expect(JSON.stringify(elicited)).toContain("User provided the requested information");
      expect(JSON.stringify(elicited)).toContain("blue");
    } finally {
      await client.close();
    }
  }, 60_000);

  it("subscriptions/listen: acknowledged with the client's own subscription id, from either kind of server", async () => {
    for (const server of ["modern", "everything"]) {
      const controller = new AbortController();
      const body = { jsonrpc: "2.0", id: `sub-${server}`, method: "subscriptions/listen", params: { _meta: envelope, notifications: { toolsListChanged: true } } };
      const response = await fetch(`${h.url}/mcp/${server}`, { method: "POST", signal: controller.signal, headers: { "content-type": "application/json", accept: "application/json, text/event-stream", "mcp-protocol-version": "2026-07-28", "mcp-method": "subscriptions/listen" }, body: JSON.stringify(body) });
      expect(response.headers.get("content-type")).toContain("text/event-stream");
      const reader = response.body!.getReader();
      let text = "";
      while (!text.includes("\n\n")) text += new TextDecoder().decode((await reader.read()).value);
      const ack = JSON.parse(text.split("\n").find((l) => l.startsWith("data: "))!.slice(6));
      expect(ack.method, server).toBe("notifications/subscriptions/acknowledged");
      expect(ack.params._meta["io.modelcontextprotocol/subscriptionId"], server).toBe(`sub-${server}`);
      controller.abort();
    }
  }, 60_000);
});
