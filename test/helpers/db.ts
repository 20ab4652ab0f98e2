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
