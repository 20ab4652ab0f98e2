import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { joinTestAgent, type TestAgent } from "./helpers/agent.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { execFile } from "node:child_process";
import { mandate } from "./helpers/cli.js";
import { applyDbRoles, directClient, directQuery, proxyClient, proxyConnString, psql, registerDatabase } from "./helpers/db.js";
import type { ControlPlane } from "../src/server/index.js";

let plane: ControlPlane;
let reader: TestAgent;
let admin: TestAgent;
const schema = `mandate_db_${process.pid}_${Date.now() % 100000}`;

beforeAll(async () => {
  await directQuery(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.orders (id int primary key, item text); INSERT INTO ${schema}.orders VALUES (1, 'apple'), (2, 'pear'); CREATE TABLE ${schema}.victim (id int)`);
  plane = await startTestControlPlane({ db: { listen: "127.0.0.1:0" } });
  await applyDbRoles(plane);
  await registerDatabase(plane, "orders");
  reader = await joinTestAgent(plane, "reader-1", { roles: ["db-reader"] });
  admin = await joinTestAgent(plane, "admin-1", { roles: ["db-admin"] });
}, 60_000);

afterAll(async () => {
  await plane?.close();
  await directQuery(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
});

describe("psql through the proxy", () => {
  test("a read-only agent runs SELECTs", async () => {
    const r = await psql(proxyConnString(plane, reader, "orders"), `SELECT item FROM ${schema}.orders ORDER BY id`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("apple\npear");
  });

  test("a read-only agent cannot DROP TABLE; the session stays usable", async () => {
    const r = await psql(proxyConnString(plane, reader, "orders"), `DROP TABLE ${schema}.victim`, ["-c", "SELECT 42"]);
    expect(r.stderr).toContain("permission denied by Mandate");
    // The message names what the role refused.
    expect(r.stderr).toMatch(/db:orders\/ddl/);
    expect(r.stdout).toBe("42");
  });

  test("pg client with extended protocol", async () => {
    const client = proxyClient(plane, reader, "orders");
    await client.connect();
    const result = await client.query(`SELECT item FROM ${schema}.orders WHERE id = $1`, [2]);
    expect(result.rows).toEqual([{ item: "pear" }]);
    await expect(client.query(`DELETE FROM ${schema}.orders WHERE id = $1`, [1])).rejects.toMatchObject({ code: "42501" });
    const again = await client.query({ name: "byid", text: `SELECT item FROM ${schema}.orders WHERE id = $1`, values: [1] });
    expect(again.rows).toEqual([{ item: "apple" }]);
    await client.end();
  });

  test("COPY FROM STDIN and COPY TO STDOUT are relayed for a role that allows them", async () => {
    const { spawn } = await import("node:child_process");
    const conn = proxyConnString(plane, admin, "orders");
    const copyIn = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn("psql", [conn, "-X", "-A", "-t", "-c", `COPY ${schema}.victim FROM STDIN`]);
      let out = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString()));
      child.stderr.on("data", (c: Buffer) => (out += c.toString()));
      child.once("exit", (code) => resolve({ code, out }));
      child.stdin.end("7\n8\n9\n");
    });
    expect(copyIn.out.trim()).toBe("COPY 3");
    const copyOut = await psql(conn, `COPY (SELECT id FROM ${schema}.victim ORDER BY id) TO STDOUT`);
    expect(copyOut.stdout).toBe("7\n8\n9");
    await psql(conn, `DELETE FROM ${schema}.victim`);
  });

  test("admin can", async () => {
    const r = await psql(proxyConnString(plane, admin, "orders"), `DELETE FROM ${schema}.victim`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("DELETE 0");
  });
});

describe("pgbench and locks", () => {
  test("pgbench -S through the proxy completes without errors", async () => {
    const direct = directClient();
    await direct.connect();
    const exists = await direct.query("SELECT 1 FROM pg_database WHERE datname = 'mandate_pgbench_test'");
    if (exists.rowCount === 0) await direct.query("CREATE DATABASE mandate_pgbench_test");
    await direct.end();
    const run = (args: string[]) =>
      new Promise<{ code: number; out: string }>((resolve) =>
        execFile("pgbench", args, { timeout: 60_000 }, (error, stdout, stderr) => resolve({ code: error ? 1 : 0, out: stdout + stderr })),
      );
    const init = await run(["-i", "-s", "1", "-q", "-h", "127.0.0.1", "-U", "postgres", "mandate_pgbench_test"]);
    expect(init.code, init.out).toBe(0);
    await plane.context.db!.registry.add({ name: "pgb", host: "127.0.0.1", port: 5432, database: "mandate_pgbench_test", defaultUser: "postgres", users: { postgres: null }, sslMode: "disable", labels: {} }, "test");
    const conn = proxyConnString(plane, admin, "pgb");
    const bench = await run(["-S", "-n", "-c", "4", "-j", "2", "-T", "3", conn]);
    expect(bench.code, bench.out).toBe(0);
    expect(bench.out).toMatch(/number of failed transactions: 0 /);
    const processed = Number(/actually processed: (\d+)/.exec(bench.out)?.[1] ?? 0);
    expect(processed).toBeGreaterThan(100);
    // The read-only agent's role names the orders database only.
    const refused = await run(["-S", "-n", "-c", "1", "-t", "5", proxyConnString(plane, reader, "pgb")]);
    expect(refused.code).not.toBe(0);
    expect(refused.out).toContain("permission denied by Mandate");
  }, 90_000);

  test("locking the agent ends its open connection and refuses new ones", async () => {
    const victim = await joinTestAgent(plane, "reader-locked", { roles: ["db-reader"] });
    const client = proxyClient(plane, victim, "orders");
    client.on("error", () => undefined);
    await client.connect();
    expect((await client.query("SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }]);
    const ended = new Promise<void>((resolve) => client.once("end", () => resolve()));
    const lock = await mandate("locks", "add", "--agent", "reader-locked", "--reason", "test", "--data-dir", plane.dataDir);
    expect(lock.code, lock.stderr).toBe(0);
    await ended;
    const again = await psql(proxyConnString(plane, victim, "orders"), "SELECT 1");
    expect(again.stderr).toMatch(/lock/i);
  }, 30_000);
});

describe("audit", () => {
  test("every statement is recorded: redacted text, classes, tables, decision, rows, duration, agent", async () => {
    const conn = proxyConnString(plane, reader, "orders");
    await psql(conn, `SELECT item FROM ${schema}.orders WHERE item = 'secret-literal-42'`);
    await psql(conn, `SELECT item FROM ${schema}.orders`);
    await psql(conn, `DELETE FROM ${schema}.orders WHERE item = 'other-literal'`);
    await plane.context.db!.journal.flush();
    const events = (await plane.context.audit.list({ limit: 200 })).filter((e) => e.type === "db.query" && e.actor.agent === "reader-1");
    const text = JSON.stringify(events);
    expect(text).not.toContain("secret-literal-42");
    expect(text).not.toContain("other-literal");
    const read = events.find((e) => e.details?.statement === `SELECT item FROM ${schema}.orders` && e.code === "OK");
    expect(read).toMatchObject({
      target: { database: "orders", dbUser: "postgres" },
      decision: { allow: true },
      details: { statements: ["select"], tables: [`${schema}.orders`], rows: 2, protocol: "simple" },
      outcome: { status: "ok" },
      actor: { kind: "agent", agent: "reader-1" },
    });
    expect(typeof read!.outcome.latencyMs).toBe("number");
    expect(events.find((e) => String(e.details?.statement).includes("item = $1") && e.code === "OK")).toBeDefined();
    const denied = events.find((e) => e.code === "PERMISSION_DENIED" && String(e.details?.statement).startsWith("DELETE"));
    expect(denied).toMatchObject({ decision: { allow: false }, details: { statements: ["delete"], tables: [`${schema}.orders`] } });
  });

  test("the journal is empty once everything is folded into the audit log", async () => {
    const { readdir } = await import("node:fs/promises");
    const { join } = await import("node:path");
    await plane.context.db!.journal.flush();
    expect(plane.context.db!.journal.stats.folded).toBeGreaterThan(0);
    const files = await readdir(join(plane.dataDir, "db-audit"));
    expect(files.length).toBeLessThanOrEqual(1);
  });
});
