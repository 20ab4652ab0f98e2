import { execFile } from "node:child_process";
import { join } from "node:path";
import pg from "pg";
import { readFileSync } from "node:fs";
import type { AccessGate, GateDecision, StatementClass } from "../../src/policy/index.js";
import type { ControlPlane } from "../../src/server/index.js";
import type { TestAgent } from "./agent.js";

export const UPSTREAM = { host: "127.0.0.1", port: 5432, database: "test", user: "postgres" };

/**
 * A stand-in access gate for the proxy's own tests: agents whose name starts with
 * "reader" may run read-only classes, "admin…" anything. The real engine is tested on
 * its own; these tests are about what reaches the gate and what the proxy does with it.
 */
export function classGate(readOnly: StatementClass[] = ["select", "session", "transaction"]): AccessGate & { requests: unknown[] } {
  const requests: unknown[] = [];
  return {
    requests,
    async authorize(request): Promise<GateDecision> {
      requests.push(request);
      const agent = request.caller.agent ?? "";
      const principal = { kind: "agent" as const, name: agent, spiffeId: request.caller.spiffeId, roles: [], labels: {} };
      if (request.resource.kind !== "db") return { allow: false, reasons: ["not db"], obligations: [], policyIds: [], principal };
      if (agent.startsWith("admin")) return { allow: true, reasons: ["allowed by role db-admin"], obligations: [], policyIds: ["role:db-admin"], principal };
      const bad = request.resource.statements.filter((s) => !readOnly.includes(s));
      if (bad.length === 0 && agent.startsWith("reader")) return { allow: true, reasons: ["allowed by role db-reader"], obligations: [], policyIds: ["role:db-reader"], principal };
      return { allow: false, reasons: [`denied: role db-reader does not allow ${bad.join(", ") || "anything"} on db:${request.resource.database}`], obligations: [], policyIds: ["role:db-reader"], principal, deniedBy: "agent_roles" };
    },
  };
}

export function dbPort(plane: ControlPlane): number {
  const port = plane.context.db?.port;
  if (!port) throw new Error("the control plane has no database listener");
  return port;
}

/** libpq connection string through the proxy with the agent's SVID. */
export function proxyConnString(plane: ControlPlane, agent: TestAgent, database: string, user = "postgres"): string {
  return `host=127.0.0.1 port=${dbPort(plane)} dbname=${database} user=${user} sslmode=require sslcert=${join(agent.credentialDir, "svid.pem")} sslkey=${join(agent.credentialDir, "svid_key.pem")} connect_timeout=10`;
}

export interface PsqlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function psql(conn: string, sql: string, extra: string[] = []): Promise<PsqlResult> {
  return new Promise((resolve) => {
    execFile("psql", [conn, "-X", "-A", "-t", "-v", "ON_ERROR_STOP=0", "-c", sql, ...extra], { timeout: 30_000, env: { ...process.env, PGAPPNAME: "mandate-test" } }, (error, stdout, stderr) => {
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout: stdout.trim(), stderr: stderr.trim() });
    });
  });
}

/** A `pg` client through the proxy. */
export function proxyClient(plane: ControlPlane, agent: TestAgent, database: string, user = "postgres"): pg.Client {
  return new pg.Client({
    host: "127.0.0.1",
    port: dbPort(plane),
    database,
    user,
    ssl: { rejectUnauthorized: false, cert: readFileSync(join(agent.credentialDir, "svid.pem"), "utf8"), key: readFileSync(join(agent.credentialDir, "svid_key.pem"), "utf8") },
  });
}

export function directClient(): pg.Client {
  return new pg.Client(UPSTREAM);
}

/** Registers a database through the admin API as `mandate db add` would. */
export async function registerDatabase(plane: ControlPlane, name: string, extra: Record<string, unknown> = {}): Promise<void> {
  await plane.context.db!.registry.add({ name, host: UPSTREAM.host, port: UPSTREAM.port, database: UPSTREAM.database, defaultUser: UPSTREAM.user, users: { postgres: null }, sslMode: "disable", labels: { env: "test" }, ...extra }, "test");
}

/** A hand-driven protocol client (TLS + SVID), for message sequences no driver sends. */
export class RawPgClient {
  private buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: import("node:net").Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on("close", () => {
      this.closed = true;
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on("error", () => undefined);
  }

  /** Plain TCP to the listener (nothing sent yet). */
  static async plain(port: number): Promise<RawPgClient> {
    const { connect } = await import("node:net");
    const socket = connect({ host: "127.0.0.1", port });
    await new Promise((resolve, reject) => socket.once("connect", resolve).once("error", reject));
    return new RawPgClient(socket);
  }

  /** SSLRequest, TLS with the agent's SVID, StartupMessage; resolves after the first ReadyForQuery. */
  static async login(plane: ControlPlane, agent: TestAgent, database: string, user = "postgres"): Promise<RawPgClient> {
    const plain = await RawPgClient.plain(dbPort(plane));
    plain.socket.write(Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]));
    const answer = await plain.bytes(1);
    if (answer.toString() !== "S") throw new Error(`SSLRequest answered ${answer.toString()}`);
    plain.socket.removeAllListeners("data");
    const { connect } = await import("node:tls");
    const tls = connect({ socket: plain.socket, cert: readFileSync(join(agent.credentialDir, "svid.pem")), key: readFileSync(join(agent.credentialDir, "svid_key.pem")), rejectUnauthorized: false });
    await new Promise((resolve, reject) => tls.once("secureConnect", resolve).once("error", reject));
    const client = new RawPgClient(tls);
    const { startupMessage } = await import("../../src/db/protocol.js");
    tls.write(startupMessage({ user, database }));
    await client.until("Z");
    return client;
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  async bytes(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buffer.length < n) {
      if (this.closed || Date.now() > deadline) throw new Error(`wanted ${n} bytes, have ${this.buffer.length}${this.closed ? " (closed)" : ""}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
    const out = this.buffer.subarray(0, n);
    this.buffer = this.buffer.subarray(n);
    return out;
  }

  /** Reads typed messages until one of `type` arrives; returns them all. */
  async until(type: string, timeoutMs = 5000): Promise<{ type: string; body: Buffer }[]> {
    const messages: { type: string; body: Buffer }[] = [];
    for (;;) {
      const head = await this.bytes(5, timeoutMs);
      const body = await this.bytes(head.readUInt32BE(1) - 4, timeoutMs);
      const message = { type: String.fromCharCode(head[0]!), body: Buffer.from(body) };
      messages.push(message);
      if (message.type === type) return messages;
    }
  }

  /** Waits for the server to close; returns what came before (e.g. a FATAL error). */
  async closedWith(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    return this.buffer.toString("latin1");
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The fields of ErrorResponse messages among `messages`. */
export function errorsIn(messages: { type: string; body: Buffer }[]): { code: string; message: string }[] {
  return messages
    .filter((m) => m.type === "E")
    .map((m) => {
      const fields = new Map<string, string>();
      let o = 0;
      while (o < m.body.length && m.body[o] !== 0) {
        const end = m.body.indexOf(0, o + 1);
        fields.set(String.fromCharCode(m.body[o]!), m.body.toString("utf8", o + 1, end));
        o = end + 1;
      }
      return { code: fields.get("C") ?? "", message: fields.get("M") ?? "" };
    });
}

/** The roles the database tests use, applied through the real CLI: a reader and an administrator. */
export const DB_ROLES = `kind: role
name: db-reader
description: reads the orders database as postgres; no writes, no functions with side effects
allow:
  db:
    - databases: [orders]
      users: [postgres]
      statements: [select, session, transaction]
---
kind: role
name: db-admin
description: anything on any registered database
allow:
  db:
    - databases: ["*"]
      users: ["*"]
`;

export async function applyDbRoles(plane: ControlPlane): Promise<void> {
  const { writeFile, mkdtemp } = await import("node:fs/promises");
  const { tmpdir } = await import("node:os");
  const file = join(await mkdtemp(join(tmpdir(), "mandate-roles-")), "db-roles.yaml");
  await writeFile(file, DB_ROLES);
  const { mandate } = await import("./cli.js");
  const applied = await mandate("roles", "apply", "-f", file, "--data-dir", plane.dataDir);
  if (applied.code !== 0) throw new Error(`roles apply failed: ${applied.stderr}`);
}

/** Runs SQL directly on the test server (setup and cleanup, not through the proxy). */
export async function directQuery<R extends pg.QueryResultRow = any>(sql: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
  const direct = directClient();
  await direct.connect();
  try {
    return await direct.query<R>(sql, values);
  } finally {
    await direct.end();
  }
}
