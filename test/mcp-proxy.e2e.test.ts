import { execFile } from "node:child_process";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/server/index.js";
import { PROXY_ROLES, type TestDelegation, delegateTo, usePolicy } from "./helpers/access.js";
import { type TestAgent, joinTestAgent } from "./helpers/agent.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { EVERYTHING_BIN, FILESYSTEM_BIN, eventually, fetchWithTls } from "./helpers/mcp.js";
import { addTestUser } from "./helpers/users.js";

const exec = promisify(execFile);
const MANDATE_BIN = fileURLToPath(new URL("../bin/mandate.js", import.meta.url));
const INSPECTOR_CLI = fileURLToPath(new URL("../node_modules/@modelcontextprotocol/inspector/cli/build/cli.js", import.meta.url));
const TASK = "mcp-proxy-e2e";

/**
 * The agent's role: the everything server only as long as it is labelled env=test (so the
 * proxy must hand the server's labels to the gate), the fs server; never get-env or
 * write_file, nor get-sum of 13 (so the proxy must hand the call's arguments to the gate).
 */
const ROLES = `${PROXY_ROLES}
---
kind: role
name: mcp-e2e
allow:
  mcp:
    - servers: [everything]
      labels: "env=test"
    - servers: [fs]
deny:
  mcp:
    - servers: [everything]
      tools: [get-env]
    - servers: [fs]
      tools: [write_file]
    - servers: [everything]
      tools: [get-sum]
      conditions: 'context has args && context.args has a && context.args.a == 13'
`;

describe("MCP proxy on the control plane's HTTPS listener, with real SVIDs", () => {
  let plane: ControlPlane;
  let agent: TestAgent;
  let delegation: TestDelegation;
  let files: string;
  let direct: Client;

  beforeAll(async () => {
    plane = await startTestControlPlane();
    await usePolicy(plane, ROLES);
    await addTestUser(plane.dataDir, "alice", ["delegator"]);
    agent = await joinTestAgent(plane, "deploy-auditor", { roles: ["mcp-e2e"] });
    delegation = await delegateTo(plane, agent, { task: TASK, allow: ["mcp:everything/*"] });
    files = await tempDir("mandate-fs-");
    await mkdir(join(files, "docs"));
    await writeFile(join(files, "docs", "runbook.md"), "# Runbook\nrestart the checkout pods\n");
    const d = ["--data-dir", plane.dataDir];
    expect((await mandate("mcp", "servers", "add", "everything", "--command", `node ${EVERYTHING_BIN} stdio`, "--labels", "env=test", "--owner", "alice", ...d)).code).toBe(0);
    expect((await mandate("mcp", "servers", "add", "fs", "--command", `node ${FILESYSTEM_BIN} ${files}`, "--owner", "alice", ...d)).code).toBe(0);
    direct = new Client({ name: "direct", version: "1" });
    await direct.connect(new StdioClientTransport({ command: "node", args: [EVERYTHING_BIN, "stdio"], stderr: "ignore" }));
  }, 120_000);
  afterAll(async () => {
    await direct?.close();
    const dir = plane?.dataDir;
    await plane?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (files) await rm(files, { recursive: true, force: true });
  });

  it("refuses a caller without credentials (401)", async () => {
    const answer = await fetchWithTls({ ca: agent.credentials.bundlePem })(`${plane.url}/mcp/everything`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(answer.status).toBe(401);
  });

  it("a JWT-SVID bearer plus delegation token: filtered tools, results identical to a direct connection, every call audited", async () => {
    const jwt = await agent.jwtSvid();
    const transport = new StreamableHTTPClientTransport(new URL(`${plane.url}/mcp/everything`), { fetch: fetchWithTls({ ca: agent.credentials.bundlePem }), requestInit: { headers: { authorization: `Bearer ${jwt}`, "x-mandate-delegation": delegation.token } } });
    const client = new Client({ name: "agent", version: "1" });
    await client.connect(transport);
    try {
      const tools = await client.listTools();
      expect(tools.tools).toEqual((await direct.listTools()).tools.filter((t) => t.name !== "get-env"));
      const call = { name: "get-sum", arguments: { a: 40, b: 2 } };
      expect(await client.callTool(call)).toEqual(await direct.callTool(call));
      await expect(client.callTool({ name: "get-env", arguments: {} })).rejects.toThrow(/denied by Mandate: denied: role mcp-e2e of agent deploy-auditor denies mcp:everything\/get-env/);
      // The arguments reach the decision: the role's condition on them denies this call and no other.
      await expect(client.callTool({ name: "get-sum", arguments: { a: 13, b: 2 } })).rejects.toThrow(/role mcp-e2e of agent deploy-auditor denies mcp:everything\/get-sum \(deny\.mcp\[2\]/);

      const session = transport.sessionId!;
      const trace = await eventually(async () => {
        const result = await mandate("audit", "trace", session, "--data-dir", plane.dataDir, "--format", "json");
        expect(result.code, result.stderr).toBe(0);
        const body = result.json();
        expect(JSON.stringify(body)).toContain("get-env");
        return body;
      });
      const events = JSON.stringify(trace);
      for (const type of ["mcp.session.open", "mcp.tool.list", "mcp.tool.call"]) expect(events).toContain(type);
      const text = await mandate("audit", "trace", session, "--data-dir", plane.dataDir);
      expect(text.stdout).toMatch(/mcp\.tool\.call .*get-env.*DENY/);
      const calls = (await plane.context.audit.list({ type: "mcp.tool.call" })).filter((e) => e.correlation?.session === session);
      const outcome = calls.find((e) => e.target?.name === "get-sum" && e.code === "OK")!;
      expect(outcome.details).toMatchObject({ name: "get-sum", resultStatus: "ok" });
      expect(outcome.details!.responseBytes).toBeGreaterThan(0);
      expect(outcome.outcome.latencyMs).toBeGreaterThanOrEqual(0);
      expect(outcome.decision?.reasons[0]).toContain("allowed");
      // Decided for the JWT-SVID's agent, under the delegation it presented, by the role rule that needs the server's labels.
      expect(outcome.actor).toMatchObject({ kind: "agent", spiffeId: agent.spiffeId, agent: "deploy-auditor" });
      expect(outcome.delegation).toMatchObject({ id: delegation.id, task: TASK, delegator: "user:alice", chain: ["user:alice", "agent:deploy-auditor"] });
      expect(outcome.decision?.reasons.join("\n")).toContain(`delegation ${delegation.id}`);
      expect(outcome.decision?.policy).toContain("role:mcp-e2e/allow.mcp[0]");
      const intent = calls.find((e) => e.target?.name === "get-sum" && e.code === "INTENT")!;
      expect(intent.details).toMatchObject({ arguments: { a: 40, b: 2 } });
      expect(outcome.correlation?.parentEvent).toBe(intent.id);
      expect(calls.find((e) => e.target?.name === "get-env")!.decision).toMatchObject({ allow: false });
      expect(calls.filter((e) => e.target?.name === "get-sum" && e.decision?.allow === false)).toHaveLength(1);
    } finally {
      await client.close();
    }
  }, 60_000);

  it("mTLS with the X509-SVID, as a 2026-07-28 client", async () => {
    const client = new ModernClient({ name: "modern-agent", version: "2" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } } as never);
    await client.connect(new ModernTransport(new URL(`${plane.url}/mcp/everything`), { fetch: fetchWithTls({ ca: agent.credentials.bundlePem, cert: agent.credentials.svidPem, key: agent.credentials.keyPem }) }));
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).not.toContain("get-env");
      expect(await client.callTool({ name: "echo", arguments: { message: "over mTLS" } })).toMatchObject({ content: [{ text: "Echo: over mTLS" }] });
      // No bearer was sent: the X509-SVID alone named the caller the decision was made for.
      const echo = (await plane.context.audit.list({ type: "mcp.tool.call" })).find((e) => e.target?.name === "echo" && e.code === "INTENT" && (e.details as { arguments?: { message?: string } }).arguments?.message === "over mTLS")!;
      expect(echo.actor).toMatchObject({ kind: "agent", spiffeId: agent.spiffeId, agent: "deploy-auditor" });
      expect(echo.decision).toMatchObject({ allow: true });
      expect(echo.delegation).toBeUndefined();
    } finally {
      await client.close();
    }
  }, 60_000);

  it("mandate mcp connect relays a desktop client's stdio to the proxy with the local identity", async () => {
    const client = new Client({ name: "desktop", version: "1" });
    await client.connect(new StdioClientTransport({ command: process.execPath, args: [MANDATE_BIN, "mcp", "connect", "fs", "--creds", agent.credentialDir], stderr: "pipe" }));
    try {
      const straight = new Client({ name: "direct-fs", version: "1" });
      await straight.connect(new StdioClientTransport({ command: "node", args: [FILESYSTEM_BIN, files], stderr: "ignore" }));
      const tools = await client.listTools();
      expect(tools.tools.map((t) => t.name)).not.toContain("write_file");
      expect(tools.tools).toEqual((await straight.listTools()).tools.filter((t) => t.name !== "write_file"));
      const read = { name: "read_text_file", arguments: { path: join(files, "docs", "runbook.md") } };
      expect(await client.callTool(read)).toEqual(await straight.callTool(read));
      await expect(client.callTool({ name: "write_file", arguments: { path: join(files, "x"), content: "no" } })).rejects.toThrow(/denied by Mandate/);
      await straight.close();
    } finally {
      await client.close();
    }
  }, 60_000);

  it("the MCP Inspector CLI lists and calls tools through mandate mcp connect", async () => {
    const base = [INSPECTOR_CLI, "--cli", process.execPath, MANDATE_BIN, "mcp", "connect", "everything", "--creds", agent.credentialDir];
    const listed = JSON.parse((await exec(process.execPath, [...base, "--method", "tools/list"], { timeout: 60_000 })).stdout);
    expect(listed.tools.map((t: { name: string }) => t.name)).toContain("echo");
    expect(listed.tools.map((t: { name: string }) => t.name)).not.toContain("get-env");
    const called = JSON.parse((await exec(process.execPath, [...base, "--method", "tools/call", "--tool-name", "echo", "--tool-arg", "message=from the inspector"], { timeout: 60_000 })).stdout);
    expect(called.content[0].text).toBe("Echo: from the inspector");
  }, 120_000);
});
