import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ProxyHarness, eventually, startEverythingHttp, startProxyHarness } from "../../test/helpers/mcp.js";
import { startModernServer } from "../../test/helpers/modern-server.js";

const exec = promisify(execFile);
const INSPECTOR_CLI = fileURLToPath(new URL("../../node_modules/@modelcontextprotocol/inspector/cli/build/cli.js", import.meta.url));

async function connect(h: ProxyHarness, server: string): Promise<Client> {
  const client = new Client({ name: "results", version: "1" });
  await client.connect(new StreamableHTTPClientTransport(new URL(`${h.url}/mcp/${server}`)));
  return client;
}

describe("secrets in results, legacy HTTP+SSE upstreams, the Inspector on the HTTP endpoint", () => {
  let h: ProxyHarness;
  let modern: { url: string; close(): Promise<void> };
  let sse: { url: string; close(): Promise<void> };

  beforeAll(async () => {
    modern = await startModernServer();
    sse = await startEverythingHttp("sse");
    h = await startProxyHarness();
    await h.addServer({ name: "redacting", url: modern.url, secretAction: "redact" });
    await h.addServer({ name: "blocking", url: modern.url, secretAction: "block" });
    await h.addServer({ name: "flagging", url: modern.url, secretAction: "flag" });
    await h.addServer({ name: "old-sse", url: sse.url, transport: "sse" });
  }, 60_000);
  afterAll(async () => {
    await h?.close();
    await modern?.close();
    await sse?.close();
  });

  it("redacts, blocks or flags a result carrying credentials, per server, and records the finding", async () => {
    const redacting = await connect(h, "redacting");
    const redacted = JSON.stringify(await redacting.callTool({ name: "leaky", arguments: {} }));
    expect(redacted).not.toContain("AKIAABCDEFGHIJKLMNOP");
    expect(redacted).toContain("[REDACTED:aws-access-key]");
    expect(redacted).toContain("[REDACTED:github-token]");
    await redacting.close();

    const blocking = await connect(h, "blocking");
    await expect(blocking.callTool({ name: "leaky", arguments: {} })).rejects.toThrow(/secret\(s\) and was blocked/);
    await blocking.close();

    const flagging = await connect(h, "flagging");
    expect(JSON.stringify(await flagging.callTool({ name: "leaky", arguments: {} }))).toContain("AKIAABCDEFGHIJKLMNOP");
    await flagging.close();

    const findings = await eventually(async () => {
      const events = await h.audit.list({ type: "mcp.poisoning" });
      expect(events.filter((e) => e.code === "SECRET_IN_RESULT")).toHaveLength(3);
      return events;
    });
    // The audit record names the finding, never the secret.
    expect(JSON.stringify(findings)).not.toContain("AKIAABCDEFGHIJKLMNOP");
    expect(JSON.stringify(await h.audit.list({ type: "mcp.tool.call" }))).not.toContain("AKIAABCDEFGHIJKLMNOP");
  }, 60_000);

  it("reaches a server on the deprecated HTTP+SSE transport", async () => {
    const direct = new Client({ name: "direct", version: "1" });
    await direct.connect(new SSEClientTransport(new URL(sse.url)));
    const client = await connect(h, "old-sse");
    try {
      expect((await client.listTools()).tools).toEqual((await direct.listTools()).tools);
      expect(await client.callTool({ name: "get-sum", arguments: { a: 1, b: 2 } })).toEqual(await direct.callTool({ name: "get-sum", arguments: { a: 1, b: 2 } }));
    } finally {
      await client.close();
      await direct.close();
    }
  }, 60_000);

  it("the MCP Inspector CLI lists and calls tools on the proxy's Streamable HTTP endpoint", async () => {
    const url = `${h.url}/mcp/redacting/mcp`;
    const listed = JSON.parse((await exec(process.execPath, [INSPECTOR_CLI, "--cli", url, "--transport", "http", "--method", "tools/list"], { timeout: 60_000 })).stdout);
    expect(listed.tools.map((t: { name: string }) => t.name)).toContain("echo");
    const called = JSON.parse((await exec(process.execPath, [INSPECTOR_CLI, "--cli", url, "--transport", "http", "--method", "tools/call", "--tool-name", "echo", "--tool-arg", "text=inspected"], { timeout: 60_000 })).stdout);
    expect(called.content[0].text).toBe("echo: inspected");
  }, 120_000);
});
