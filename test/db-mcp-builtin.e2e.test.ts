import { Client as ModernClient, StreamableHTTPClientTransport as ModernTransport } from "@modelcontextprotocol/client";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { AuthenticatedCaller } from "../src/policy/index.js";
import type { ControlPlane } from "../src/server/index.js";
import { delegateTo, usePolicy } from "./helpers/access.js";
import { type TestAgent, joinTestAgent } from "./helpers/agent.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { directQuery, registerDatabase } from "./helpers/db.js";
import { fetchWithTls } from "./helpers/mcp.js";
import { addTestUser } from "./helpers/users.js";

const S = `mandate_mcpbuiltin_${process.pid}`;

/**
 * Both agents may call every tool of the built-in server (the MCP layer); only the reader
 * may run statements on the database (the database layer), so whatever differs between
 * them is decided by the caller's own identity at the database proxy.
 */
const ROLES = `kind: role
name: orders-reader
allow:
  mcp:
    - servers: [orders-db]
  db:
    - databases: [orders]
      users: [postgres]
      statements: [select, session, transaction]
---
kind: role
name: orders-delegator
description: a person who may hand the orders tools and statements to agents
allow:
  mcp:
    - servers: [orders-db]
  db:
    - databases: [orders]
      users: ["*"]
  delegate:
    - agents: ["**"]
      max_ttl: 1h
---
kind: role
name: tools-only
allow:
  mcp:
    - servers: [orders-db]
`;

let plane: ControlPlane;
let reader: TestAgent;
let outsider: TestAgent;

beforeAll(async () => {
  await directQuery(`DROP SCHEMA IF EXISTS ${S} CASCADE; CREATE SCHEMA ${S}; CREATE TABLE ${S}.customers (id int primary key, name text not null); INSERT INTO ${S}.customers VALUES (1, 'ada'), (2, 'grace')`);
  // No PostgreSQL listener at all: the built-in server reaches the proxy in-process.
  plane = await startTestControlPlane({ db: { listen: "off" } });
  await usePolicy(plane, ROLES);
  await registerDatabase(plane, "orders");
  const added = await mandate("mcp", "servers", "add", "orders-db", "--db", "orders", "--db-user", "postgres", "--labels", "env=test", "--owner", "alice", "--data-dir", plane.dataDir);
  expect(added.code, added.stderr).toBe(0);
  reader = await joinTestAgent(plane, "orders-analyst", { roles: ["orders-reader"] });
  outsider = await joinTestAgent(plane, "tools-only-bot", { roles: ["tools-only"] });
  await addTestUser(plane.dataDir, "alice", ["orders-delegator"]);
}, 90_000);

afterAll(async () => {
  await plane?.close();
  await directQuery(`DROP SCHEMA IF EXISTS ${S} CASCADE`);
});

async function connect(agent: TestAgent, delegationToken?: string): Promise<Client> {
  const client = new Client({ name: agent.name, version: "1" });
  const tls = { ca: agent.credentials.bundlePem, cert: agent.credentials.svidPem, key: agent.credentials.keyPem };
  await client.connect(new StreamableHTTPClientTransport(new URL(`${plane.url}/mcp/orders-db`), { fetch: fetchWithTls(tls), ...(delegationToken ? { requestInit: { headers: { "x-mandate-delegation": delegationToken } } } : {}) }));
  return client;
}

function text(result: unknown): string {
  return (result as { content: { text: string }[] }).content[0]!.text;
}

describe("the built-in database MCP server (mcp servers add --db)", () => {
  test("the catalog shows it as a built-in db server", async () => {
    const shown = await mandate("mcp", "servers", "show", "orders-db", "--format", "json", "--data-dir", plane.dataDir);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout).server).toMatchObject({ name: "orders-db", transport: "db", database: "orders", dbUser: "postgres" });
    const refused = await mandate("mcp", "servers", "add", "shared-db", "--db", "orders", "--stateless", "--owner", "alice", "--data-dir", plane.dataDir);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("--stateless");
  }, 60_000);

  test("a read-only agent lists, describes and selects; its DROP TABLE is refused by the database proxy and the table survives", async () => {
    const client = await connect(reader);
    try {
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(["describe_table", "list_tables", "query"]);
      const tables = await client.callTool({ name: "list_tables", arguments: { schema: S } });
      expect(tables.isError ?? false).toBe(false);
      expect(JSON.parse(text(tables))).toEqual([{ schema: S, table: "customers", type: "BASE TABLE" }]);
      const columns = await client.callTool({ name: "describe_table", arguments: { table: `${S}.customers` } });
      expect(JSON.parse(text(columns))).toEqual([expect.objectContaining({ column: "id", type: "integer", nullable: false }), expect.objectContaining({ column: "name", type: "text" })]);
      const rows = await client.callTool({ name: "query", arguments: { sql: `SELECT name FROM ${S}.customers ORDER BY id` } });
      expect(JSON.parse(text(rows))[0]).toMatchObject({ command: "SELECT", rowCount: 2, rows: [["ada"], ["grace"]] });
      // The seed scenario: told to drop the table, the agent cannot.
      const drop = await client.callTool({ name: "query", arguments: { sql: `DROP TABLE ${S}.customers` } });
      expect(drop.isError).toBe(true);
      expect(text(drop)).toContain("permission denied by Mandate");
      expect(text(drop)).toContain("42501");
      // The session survives the refusal.
      const again = await client.callTool({ name: "query", arguments: { sql: `SELECT count(*)::int AS n FROM ${S}.customers` } });
      expect(JSON.parse(text(again))[0].rows).toEqual([[2]]);
    } finally {
      await client.close();
    }
    expect((await directQuery(`SELECT count(*)::int AS n FROM ${S}.customers`)).rows[0].n).toBe(2);

    // Both layers recorded it, each naming the agent: the MCP tool call and the statement.
    await plane.context.db!.journal.flush();
    const events = await plane.context.audit.list({ limit: 1000 });
    const toolCall = events.find((e) => e.type === "mcp.tool.call" && e.target?.name === "query" && e.actor.agent === "orders-analyst" && (e.details as { arguments?: { sql?: string } }).arguments?.sql?.startsWith("DROP TABLE"));
    expect(toolCall?.decision).toMatchObject({ allow: true });
    const statement = events.find((e) => e.type === "db.query" && e.code === "PERMISSION_DENIED" && e.actor.agent === "orders-analyst" && String(e.details?.statement).startsWith("DROP TABLE"));
    expect(statement).toBeDefined();
    expect(statement!.actor).toMatchObject({ kind: "agent", spiffeId: reader.spiffeId });
    expect(statement!.target).toMatchObject({ database: "orders", dbUser: "postgres" });
    const select = events.find((e) => e.type.startsWith("db.query") && e.code !== "PERMISSION_DENIED" && e.actor.agent === "orders-analyst");
    expect(select).toBeDefined();
  }, 60_000);

  test("another agent calling the same server acts as itself: its roles allow the tools, not the statements", async () => {
    const client = await connect(outsider);
    try {
      const rows = await client.callTool({ name: "query", arguments: { sql: `SELECT name FROM ${S}.customers` } });
      expect(rows.isError).toBe(true);
      expect(text(rows)).toContain("permission denied by Mandate");
      expect(text(rows)).toContain("42501");
      const tables = await client.callTool({ name: "list_tables", arguments: { schema: S } });
      expect(tables.isError).toBe(true);
    } finally {
      await client.close();
    }
    await plane.context.db!.journal.flush();
    const events = await plane.context.audit.list({ limit: 1000 });
    const denied = events.find((e) => e.type === "db.query" && e.code === "PERMISSION_DENIED" && e.actor.agent === "tools-only-bot");
    expect(denied?.actor).toMatchObject({ spiffeId: outsider.spiffeId });
    expect(events.some((e) => e.type.startsWith("db.query") && e.code === "OK" && e.actor.agent === "tools-only-bot")).toBe(false);
  }, 60_000);

  test("the caller's delegation reaches the database layer: a grant for the tools alone does not cover the statements", async () => {
    const grant = await delegateTo(plane, reader, { task: "mcp-db-tools-only", allow: ["mcp:orders-db/*"] });
    const client = await connect(reader, grant.token);
    try {
      // Without the delegation this agent's SELECT runs (above); under it, the scope decides.
      const rows = await client.callTool({ name: "query", arguments: { sql: `SELECT name FROM ${S}.customers` } });
      expect(rows.isError).toBe(true);
      expect(text(rows)).toContain("permission denied by Mandate");
    } finally {
      await client.close();
    }
    await plane.context.db!.journal.flush();
    const events = await plane.context.audit.list({ limit: 1000 });
    const toolCall = events.find((e) => e.type === "mcp.tool.call" && e.delegation?.id === grant.id && e.decision?.allow === true);
    expect(toolCall).toBeDefined();
    const denied = events.find((e) => e.type === "db.query" && e.code === "PERMISSION_DENIED" && e.actor.agent === "orders-analyst" && e.correlation?.task === grant.task);
    expect(denied?.delegation?.id).toBe(grant.id);
  }, 60_000);

  test("a 2026-07-28 client reaches the same server and the same database path", async () => {
    const client = new ModernClient({ name: "modern-analyst", version: "2" }, { versionNegotiation: { mode: { pin: "2026-07-28" } } } as never);
    await client.connect(new ModernTransport(new URL(`${plane.url}/mcp/orders-db`), { fetch: fetchWithTls({ ca: reader.credentials.bundlePem, cert: reader.credentials.svidPem, key: reader.credentials.keyPem }) }));
    try {
      const rows = await client.callTool({ name: "query", arguments: { sql: `SELECT name FROM ${S}.customers WHERE id = 2` } });
      expect(JSON.parse(text(rows))[0].rows).toEqual([["grace"]]);
      const drop = await client.callTool({ name: "query", arguments: { sql: `DROP TABLE ${S}.customers` } });
      expect(drop.isError).toBe(true);
      expect(text(drop)).toContain("42501");
    } finally {
      await client.close();
    }
    expect((await directQuery(`SELECT count(*)::int AS n FROM ${S}.customers`)).rows[0].n).toBe(2);
  }, 60_000);

  test("an in-process connection acts only as its binding: the client's database, user and delegation are ignored; anything but a StartupMessage is refused", async () => {
    const db = plane.context.db!;
    const caller: AuthenticatedCaller = { kind: "agent", spiffeId: reader.spiffeId, agent: reader.name, via: "mtls", notAfter: new Date(Date.now() + 600_000) };
    const stream = await db.openInProcess(caller, { database: "orders", dbUser: "postgres", address: "in-process-test" });
    const client = new pg.Client({ stream: () => stream as never, database: "postgres", user: "evil", options: "-c mandate.delegation=forged -c role=evil" });
    await client.connect();
    try {
      // A forged delegation would have been refused by the gate; the binding had none, so the role decides.
      expect((await client.query("SELECT current_user AS u, current_database() AS d")).rows[0]).toEqual({ u: "postgres", d: "test" });
      await expect(client.query(`DROP TABLE ${S}.customers`)).rejects.toMatchObject({ code: "42501" });
    } finally {
      await client.end();
    }
    await db.journal.flush();
    const events = await plane.context.audit.list({ limit: 1000 });
    const select = events.find((e) => e.type.startsWith("db.query") && e.actor.address === "in-process-test" && e.code === "OK");
    expect(select?.target).toMatchObject({ database: "orders", dbUser: "postgres" });

    const raw = await db.openInProcess(caller, { database: "orders", address: "in-process-test" });
    const answer = new Promise<Buffer>((resolve) => raw.once("data", (chunk: Buffer) => resolve(chunk)));
    raw.write(Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]));
    const refusal = await answer;
    expect(String.fromCharCode(refusal[0]!)).toBe("E");
    expect(refusal.toString("utf8")).toContain("StartupMessage");
    raw.destroy();
  }, 60_000);
});
