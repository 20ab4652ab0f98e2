import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ProxyHarness, eventually, startEverythingHttp, startProxyHarness } from "../../test/helpers/mcp.js";

function proxiedClient(h: ProxyHarness, server: string, capabilities: Record<string, unknown> = {}): Promise<Client> {
  const client = new Client({ name: "test-client", version: "1.0.0" }, { capabilities });
  return client.connect(new StreamableHTTPClientTransport(new URL(`${h.url}/mcp/${server}`))).then(() => client);
}

describe("MCP proxy to a Streamable HTTP upstream (server-everything streamableHttp)", () => {
  let h: ProxyHarness;
  let upstream: { url: string; close(): Promise<void> };
  let direct: Client;

  beforeAll(async () => {
    upstream = await startEverythingHttp();
    h = await startProxyHarness();
    await h.addServer({ name: "everything", url: upstream.url });
    direct = new Client({ name: "direct", version: "1.0.0" });
    await direct.connect(new StreamableHTTPClientTransport(new URL(upstream.url)));
  }, 60_000);
  afterAll(async () => {
    await direct?.close();
    await h?.close();
    await upstream?.close();
  });

  it("returns exactly what a direct connection returns, and filters denied tools", async () => {
    h.gate.deny.add("mcp:everything/get-env");
    const client = await proxiedClient(h, "everything");
    try {
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).not.toContain("get-env");
      expect(tools.tools).toEqual((await direct.listTools()).tools.filter((t) => t.name !== "get-env"));
      for (const call of [{ name: "get-sum", arguments: { a: 2, b: 40 } }, { name: "get-structured-content", arguments: { location: "New York" } }, { name: "get-tiny-image", arguments: {} }]) {
        expect(await client.callTool(call)).toEqual(await direct.callTool(call));
      }
      expect(await client.listPrompts()).toEqual(await direct.listPrompts());
      const resources = await direct.listResources();
      expect(await client.listResources()).toEqual(resources);
      const first = resources.resources[0]!;
      expect(await client.readResource({ uri: first.uri })).toEqual(await direct.readResource({ uri: first.uri }));
      await expect(client.callTool({ name: "get-env", arguments: {} })).rejects.toThrow(/get-env denied by Mandate: denied: test policy/);
    } finally {
      await client.close();
    }
  }, 60_000);

  it("relays progress notifications and cancellation", async () => {
    const client = await proxiedClient(h, "everything");
    try {
      const progress: number[] = [];
      const result = await client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 1, steps: 4 } }, undefined, { onprogress: (p) => progress.push(p.progress), timeout: 30_000 });
      expect(progress).toEqual([1, 2, 3, 4]);
      expect(JSON.stringify(result)).toContain("completed");

      const controller = new AbortController();
      const seen: number[] = [];
      const cancelled = client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 20, steps: 20 } }, undefined, {
        signal: controller.signal,
        onprogress: (p) => {
          seen.push(p.progress);
          if (seen.length === 1) controller.abort("enough");
        },
        timeout: 30_000,
      });
      await expect(cancelled).rejects.toThrow();
      expect(seen.length).toBeGreaterThanOrEqual(1);
      await eventually(async () => expect((await h.audit.list({ type: "mcp.notification" })).some((e) => e.target?.method === "notifications/cancelled")).toBe(true));
    } finally {
      await client.close();
    }
  }, 60_000);

  it("relays sampling to the client only when policy allows it", async () => {
    const client = await proxiedClient(h, "everything", { sampling: {} });
    client.setRequestHandler(CreateMessageRequestSchema, async () => ({ role: "assistant", content: { type: "text", text: "sampled by the client" }, model: "test-model", stopReason: "endTurn" }));
    try {
      // The tool exists only for clients that can sample, so it is new since the baseline: held until approved.
      await expect(client.callTool({ name: "trigger-sampling-request", arguments: { prompt: "hi", maxTokens: 10 } })).rejects.toThrow(/awaiting approval/);
      const pending = await h.pins.list({ server: "everything", status: "pending" });
      expect(pending.map((d) => d.name)).toContain("trigger-sampling-request");
      for (const d of pending) await h.pins.decide(d.id, "approved", "spiffe://test.local/mandate/admin");
      const allowed = await client.callTool({ name: "trigger-sampling-request", arguments: { prompt: "hi", maxTokens: 10 } }, undefined, { timeout: 30_000 });
      expect(JSON.stringify(allowed)).toContain("sampled by the client");
      h.gate.deny.add("mcp:everything/client:sampling");
      const denied = await client.callTool({ name: "trigger-sampling-request", arguments: { prompt: "hi", maxTokens: 10 } }, undefined, { timeout: 30_000 });
      expect(JSON.stringify(denied)).toMatch(/denied by Mandate/);
      await eventually(async () => expect((await h.audit.list({ type: "mcp.request" })).some((e) => e.target?.method === "sampling/createMessage" && e.decision?.allow === false)).toBe(true));
    } finally {
      h.gate.deny.delete("mcp:everything/client:sampling");
      await client.close();
    }
  }, 60_000);
});
