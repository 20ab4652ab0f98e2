import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { runDbMcpServer } from "../src/db/index.js";
import type { ControlPlane } from "../src/server/index.js";
import { joinTestAgent, type TestAgent } from "./helpers/agent.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { applyDbRoles, dbPort, directClient, directQuery, registerDatabase } from "./helpers/db.js";

const S = `mandate_mcpdb_${process.pid}`;
let plane: ControlPlane;
let reader: TestAgent;

beforeAll(async () => {
  await directQuery(`DROP SCHEMA IF EXISTS ${S} CASCADE; CREATE SCHEMA ${S}; CREATE TABLE ${S}.customers (id int primary key, name text not null); INSERT INTO ${S}.customers VALUES (1, 'ada')`);
  plane = await startTestControlPlane({ db: { listen: "127.0.0.1:0" } });
  await applyDbRoles(plane);
  await registerDatabase(plane, "orders");
  reader = await joinTestAgent(plane, "reader-mcp", { roles: ["db-reader"] });
}, 60_000);

afterAll(async () => {
  await plane?.close();
  await directQuery(`DROP SCHEMA IF EXISTS ${S} CASCADE`);
});

/** A JSON-RPC peer over the server's stdio streams. */
function rpc(output: PassThrough, input: PassThrough) {
  let buffer = "";
  const waiting = new Map<number, (message: any) => void>();
  output.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    let nl: number;
    while ((nl = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, nl);
      buffer = buffer.slice(nl + 1);
      if (!line.trim()) continue;
      const message = JSON.parse(line);
      waiting.get(message.id)?.(message);
    }
  });
  let id = 0;
  return {
    call(method: string, params: unknown): Promise<any> {
      const n = ++id;
      input.write(`${JSON.stringify({ jsonrpc: "2.0", id: n, method, params })}\n`);
      return new Promise((resolve, reject) => {
        waiting.set(n, resolve);
        setTimeout(() => reject(new Error(`${method} timed out`)), 10_000);
      });
    },
    notify(method: string) {
      input.write(`${JSON.stringify({ jsonrpc: "2.0", method })}\n`);
    },
  };
}

describe("mandate mcp db", () => {
  test("list_tables, describe_table and query go through the proxy with the agent's identity; a DROP is refused", async () => {
    const input = new PassThrough();
    const output = new PassThrough();
    const server = await runDbMcpServer({ database: "orders", credentialDir: reader.credentialDir, proxyHost: "127.0.0.1", proxyPort: dbPort(plane), input, output });
    const peer = rpc(output, input);
    try {
      const init = await peer.call("initialize", { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "test", version: "1" } });
      expect(init.result.serverInfo.name).toBe("mandate-db-orders");
      peer.notify("notifications/initialized");
      const tools = await peer.call("tools/list", {});
      expect(tools.result.tools.map((t: { name: string }) => t.name).sort()).toEqual(["describe_table", "list_tables", "query"]);
      const tables = await peer.call("tools/call", { name: "list_tables", arguments: { schema: S } });
      expect(JSON.parse(tables.result.content[0].text)).toEqual([{ schema: S, table: "customers", type: "BASE TABLE" }]);
      const columns = await peer.call("tools/call", { name: "describe_table", arguments: { table: `${S}.customers` } });
      expect(JSON.parse(columns.result.content[0].text)).toEqual([expect.objectContaining({ column: "id", type: "integer", nullable: false }), expect.objectContaining({ column: "name", type: "text" })]);
      const rows = await peer.call("tools/call", { name: "query", arguments: { sql: `SELECT name FROM ${S}.customers` } });
      expect(JSON.parse(rows.result.content[0].text)[0]).toMatchObject({ command: "SELECT", rowCount: 1, rows: [["ada"]] });
      // The seed scenario: told to drop the production table, the agent cannot.
      const drop = await peer.call("tools/call", { name: "query", arguments: { sql: `DROP TABLE ${S}.customers` } });
      expect(drop.result.isError).toBe(true);
      expect(drop.result.content[0].text).toContain("permission denied by Mandate");
      expect(drop.result.content[0].text).toContain("42501");
      // The same audit as psql: attributed to the agent.
      await plane.context.db!.journal.flush();
      const events = (await plane.context.audit.list({ limit: 100 })).filter((e) => e.type.startsWith("db.query") && e.actor.agent === "reader-mcp");
      expect(events.some((e) => e.code === "PERMISSION_DENIED" && String(e.details?.statement).startsWith("DROP TABLE"))).toBe(true);
    } finally {
      await server.close();
    }
    const direct = directClient();
    await direct.connect();
    expect((await direct.query(`SELECT count(*)::int AS n FROM ${S}.customers`)).rows[0].n).toBe(1);
    await direct.end();
  });
});
