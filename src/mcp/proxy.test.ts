import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EVERYTHING_BIN, type ProxyHarness, startProxyHarness } from "../../test/helpers/mcp.js";

async function proxiedClient(h: ProxyHarness, server: string, agent = "tester"): Promise<Client> {
  const client = new Client({ name: "test-client", version: "1.0.0" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${h.url}/mcp/${server}`), { requestInit: { headers: { "x-test-agent": agent } } }));
  return client;
}

describe("MCP proxy, 2025-era client to a 2025-era stdio server (official SDK v1 client, server-everything)", () => {
  let h: ProxyHarness;
  let direct: Client;

  beforeAll(async () => {
    h = await startProxyHarness();
    await h.addServer({ name: "everything", command: ["node", EVERYTHING_BIN, "stdio"], labels: { env: "test" } });
    direct = new Client({ name: "direct", version: "1.0.0" });
    await direct.connect(new StdioClientTransport({ command: "node", args: [EVERYTHING_BIN, "stdio"], stderr: "ignore" }));
  }, 60_000);
  afterAll(async () => {
    await direct?.close();
    await h?.close();
  });

  it("lists the same tools as a direct connection, minus the denied one", async () => {
    h.gate.deny.add("mcp:everything/get-env");
    const client = await proxiedClient(h, "everything");
    try {
      const viaProxy = await client.listTools();
      const straight = await direct.listTools();
      const names = viaProxy.tools.map((t) => t.name);
      expect(names).not.toContain("get-env");
      expect(straight.tools.map((t) => t.name)).toContain("get-env");
      expect(viaProxy.tools).toEqual(straight.tools.filter((t) => t.name !== "get-env"));
      const echo = await client.callTool({ name: "echo", arguments: { message: "hello" } });
      expect(echo).toEqual(await direct.callTool({ name: "echo", arguments: { message: "hello" } }));
      await expect(client.callTool({ name: "get-env", arguments: {} })).rejects.toThrow(/denied by Mandate/);
    } finally {
      await client.close();
    }
  }, 60_000);

  it("an approval-required call answers with an MCP error naming the access request; after approval the same call passes", async () => {
    h.gate.approval.set("mcp:everything/get-sum", "pending");
    const client = await proxiedClient(h, "everything");
    try {
      const refused = await client.callTool({ name: "get-sum", arguments: { a: 1, b: 1 } }).then(
        () => undefined,
        (error: { code?: number; message: string; data?: { accessRequest?: { id: string } } }) => error,
      );
      expect(refused?.code).toBe(-32011);
      expect(refused?.message).toMatch(/approval required .*access request ar_test1 is pending/);
      expect(refused?.data?.accessRequest?.id).toBe("ar_test1");
      h.gate.approval.set("mcp:everything/get-sum", "approved");
      expect(await client.callTool({ name: "get-sum", arguments: { a: 1, b: 1 } })).toMatchObject({ content: [{ type: "text" }] });
    } finally {
      await client.close();
    }
  }, 60_000);
});
