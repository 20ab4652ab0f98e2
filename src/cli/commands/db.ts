import { spawn } from "node:child_process";
import type { Command } from "commander";
import { readCredentials } from "../../agent/index.js";
import { DEFAULT_DB_PORT, parseDatabaseUri, runDbMcpServer, SecretRef, startDbBridge, type DbView } from "../../db/index.js";
import { MandateError } from "../../errors/index.js";
import { type Io, printJson, printTable } from "../output.js";
import { untilStopSignal } from "../signals.js";
import { parseLabels } from "./agents.js";
import { adminOptions, withAdminClient } from "./shared.js";

function parseDbUser(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `NAME` (trusted without a password) or `NAME=env:VAR` / `NAME=file:/path`. */
function dbUsers(values: string[]): Record<string, string | null> {
  const users: Record<string, string | null> = {};
  for (const value of values) {
    const eq = value.indexOf("=");
    const name = eq < 0 ? value : value.slice(0, eq);
    const ref = eq < 0 ? null : value.slice(eq + 1);
    if (!name) throw new MandateError("INVALID_ARGUMENT", `invalid --db-user ${JSON.stringify(value)}: use NAME or NAME=env:VAR or NAME=file:/path`);
    if (ref !== null) checkRef(ref, `--db-user ${name}`);
    users[name] = ref;
  }
  return users;
}

function checkRef(ref: string, flag: string): void {
  if (!SecretRef.safeParse(ref).success) throw new MandateError("INVALID_ARGUMENT", `${flag}: ${JSON.stringify(ref)} is not a secret reference; use env:VARIABLE or file:/absolute/path (the password itself is never passed)`);
}

function describeRef(ref: string | null): string {
  return ref ?? "(no password: trust)";
}

export function registerDb(program: Command, io: Io): void {
  const db = program.command("db").description("The database proxy: registered PostgreSQL databases, and connecting to them with an agent identity");

  adminOptions(
    db
      .command("add <name>")
      .description("Register a database the proxy may connect to")
      .requiredOption("--uri <uri>", "postgres://USER@HOST:PORT/DATABASE[?sslmode=disable|prefer|require|verify-full&sslrootcert=/path] (no password)")
      .option("--user-secret <ref>", "where the URI user's password comes from: env:VAR (the control plane's environment) or file:/path (mode 600)")
      .option("--db-user <user[=ref]>", "another database user callers may act as, with where its password comes from (repeatable)", parseDbUser)
      .option("--labels <k=v,...>", "labels roles and conditions can match, e.g. env=prod (repeatable)", (v: string, prev: string[] = []) => [...prev, v])
      .addHelpText(
        "after",
        `
The proxy holds the upstream passwords; agents never see them. A password is named, never
given: env:VAR is read from the control plane's environment, file:/path from a file only
the control plane's user can read (re-read at each connection, so it can be rotated).
Neither the password nor the file's content is stored, printed or written to the audit log.
Which database user an agent may act as is decided by its role's db rules (users: [...]).

Examples:
  mandate db add orders --uri postgres://app@db.internal:5432/orders --user-secret env:ORDERS_APP_PASSWORD \\
      --db-user readonly=file:/etc/mandate/orders-readonly.pw --labels env=prod
  mandate db add scratch --uri postgres://postgres@127.0.0.1:5432/test?sslmode=disable`,
      ),
  ).action(async (name: string, opts: { uri: string; userSecret?: string; dbUser?: string[]; labels?: string[] }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const target = parseDatabaseUri(opts.uri);
      if (opts.userSecret) checkRef(opts.userSecret, "--user-secret");
      const users = { [target.defaultUser]: opts.userSecret ?? null, ...dbUsers(opts.dbUser ?? []) };
      const body = { name, ...target, users, labels: parseLabels(opts.labels) };
      const { database } = await client.request<{ database: DbView }>("POST", "/v1/db/databases", body);
      if (g.format === "json") printJson(io, database);
      else io.out(`Database ${database.name} registered: ${database.host}:${database.port}/${database.database}, users ${Object.keys(database.users).join(", ")}.\nConnect with: mandate db connect ${database.name} --creds ./agent-creds`);
    });
  });

  adminOptions(db.command("ls").alias("list").description("List registered databases (where each password comes from, never the password)")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { databases } = await client.request<{ databases: DbView[] }>("GET", "/v1/db/databases");
      if (g.format === "json") printJson(io, databases);
      else printTable(io, ["NAME", "UPSTREAM", "USERS", "TLS", "LABELS"], databases.map((d) => [d.name, `${d.host}:${d.port}/${d.database}`, Object.keys(d.users).join(","), d.sslMode, Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(",")]));
    });
  });

  adminOptions(db.command("show <name>").description("Show one registered database")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { database, listener } = await client.request<{ database: DbView; listener: { port: number } | null }>("GET", `/v1/db/databases/${encodeURIComponent(name)}`);
      if (g.format === "json") return printJson(io, { ...database, listener });
      io.out(
        [
          `name        ${database.name}`,
          `upstream    ${database.host}:${database.port}/${database.database} (sslmode=${database.sslMode})`,
          `default     ${database.defaultUser}`,
          ...Object.entries(database.users).map(([u, ref]) => `user        ${u}: password from ${describeRef(ref)}`),
          `labels      ${Object.entries(database.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "-"}`,
          `listener    ${listener ? `port ${listener.port}` : "off"}`,
          `created     ${database.createdAt} by ${database.createdBy}`,
        ].join("\n"),
      );
    });
  });

  adminOptions(db.command("rm <name>").alias("remove").description("Unregister a database (open connections finish; new ones are refused)")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const result = await client.request<{ removed: string }>("DELETE", `/v1/db/databases/${encodeURIComponent(name)}`);
      if (g.format === "json") printJson(io, result);
      else io.out(`Database ${name} removed.`);
    });
  });

  db.command("connect <name>")
    .description("Connect to a registered database with this host's agent identity: run psql, or open a local port")
    .option("--creds <dir>", "the agent's credential directory (kept fresh by `mandate daemon`)", "./agent-creds")
    .option("--db-user <user>", "the database user to act as (your role decides which you may)")
    .option("--proxy <host:port>", `the database proxy (default: the control plane's host, port ${DEFAULT_DB_PORT})`)
    .option("--port <n>", "open a plaintext port on 127.0.0.1 instead of running psql (0: any free port)")
    .option("--delegation <token>", "delegation token to present (or env MANDATE_DELEGATION)")
    .allowExcessArguments(true)
    .addHelpText(
      "after",
      `
The local port is bound to 127.0.0.1 and carries this identity: anyone on this host who can
reach it acts as this agent. Arguments after -- go to psql.

Examples:
  mandate db connect orders --db-user readonly                 # runs psql
  mandate db connect orders -- -c 'select count(*) from orders'
  mandate db connect orders --port 15432 &                     # then: psql -h 127.0.0.1 -p 15432 orders`,
    )
    .action(async (name: string, opts: { creds: string; dbUser?: string; proxy?: string; port?: string; delegation?: string }, cmd: Command) => {
      const { credentials, proxyHost, proxyPort } = await proxyAddress(opts.creds, opts.proxy);
      const bridge = await startDbBridge({
        credentialDir: opts.creds,
        proxyHost,
        proxyPort,
        database: name,
        dbUser: opts.dbUser,
        delegationToken: opts.delegation ?? process.env.MANDATE_DELEGATION,
        localPort: opts.port !== undefined ? Number(opts.port) : 0,
      });
      if (opts.port !== undefined) {
        io.out(`Listening on 127.0.0.1:${bridge.port} for database ${name} as ${credentials.state.spiffeId}. Press Ctrl-C to stop.`);
        await untilStopSignal();
        await bridge.close();
        return;
      }
      const psqlArgs = cmd.args.slice(1);
      const code = await new Promise<number>((resolve) => {
        const child = spawn("psql", [`host=127.0.0.1 port=${bridge.port} dbname=${name} sslmode=disable${opts.dbUser ? ` user=${opts.dbUser}` : ""}`, ...psqlArgs], { stdio: "inherit" });
        child.once("error", (error) => {
          io.err(`cannot run psql: ${error.message} (install the PostgreSQL client, or use --port)`);
          resolve(127);
        });
        child.once("exit", (c) => resolve(c ?? 1));
      });
      await bridge.close();
      if (code !== 0) process.exitCode = code;
    });
}

/** The agent's credentials and where its database proxy is: --proxy, else the control plane's host on 7432. */
async function proxyAddress(creds: string, proxy: string | undefined) {
  const credentials = await readCredentials(creds);
  if (!credentials) throw new MandateError("NOT_FOUND", `no agent credentials in ${creds}; join first with \`mandate daemon\``);
  let proxyHost = new URL(credentials.state.authServer).hostname.replace(/^\[|\]$/g, "");
  let proxyPort = DEFAULT_DB_PORT;
  if (proxy) {
    const match = /^(.*):(\d+)$/.exec(proxy);
    proxyHost = match ? match[1]!.replace(/^\[|\]$/g, "") : proxy;
    proxyPort = match ? Number(match[2]) : DEFAULT_DB_PORT;
  }
  return { credentials, proxyHost, proxyPort };
}

/** `mandate mcp db <database>`: an MCP server (stdio) over the database proxy, with this host's agent identity. */
export function registerMcpDb(mcp: Command): void {
  mcp
    .command("db <database>")
    .description("Run an MCP server (stdio) with list_tables, describe_table and query tools on a registered database, through the database proxy")
    .option("--creds <dir>", "the agent's credential directory (kept fresh by `mandate daemon`)", "./agent-creds")
    .option("--db-user <user>", "the database user to act as (default: the database's default user)")
    .option("--proxy <host:port>", `the database proxy (default: the control plane's host, port ${DEFAULT_DB_PORT})`)
    .option("--delegation <token>", "delegation token to present (or env MANDATE_DELEGATION)")
    .option("--max-rows <n>", "rows a query returns at most", (v) => Number(v), 200)
    .addHelpText(
      "after",
      `
Every statement goes through the same proxy path as psql: parsed, authorized by the agent's
role and delegation, audited. Run it on the agent's host and register it with the agent's MCP
client like any stdio server; it acts with the identity in --creds.

Example:
  mandate mcp db orders --creds ./agent-creds --db-user readonly`,
    )
    .action(async (database: string, opts: { creds: string; dbUser?: string; proxy?: string; delegation?: string; maxRows: number }) => {
      const { proxyHost, proxyPort } = await proxyAddress(opts.creds, opts.proxy);
      // stdout carries the protocol: nothing else may be printed there.
      await runDbMcpServer({ database, credentialDir: opts.creds, dbUser: opts.dbUser, proxyHost, proxyPort, delegationToken: opts.delegation ?? process.env.MANDATE_DELEGATION, maxRows: opts.maxRows });
    });
}
