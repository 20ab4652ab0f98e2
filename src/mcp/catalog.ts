import { MandateError } from "../errors/index.js";
import type { Labels } from "../policy/index.js";
import type { Store } from "../store/index.js";
import type { McpServerTable } from "../store/schema.js";

/** `db`: the built-in database server, hosted in the proxy for each caller (`--db`) */
export type McpTransport = "stdio" | "http" | "sse" | "db";
export type DriftMode = "hide" | "alert";
export type SecretAction = "block" | "redact" | "flag";

/** A catalog entry as the API shows it: credentials are named, never returned. */
export interface McpServerEntry {
  name: string;
  transport: McpTransport;
  command?: string[];
  url?: string;
  /** a `db` server: the registered database and the database user its statements ask for */
  database?: string;
  dbUser?: string;
  labels: Labels;
  owner: string;
  stateless: boolean;
  driftMode: DriftMode;
  secretAction: SecretAction;
  createdAt: string;
  createdBy: string;
  secrets: { env: string[]; headers: string[] };
}

export interface NewMcpServer {
  name: string;
  command?: string[] | undefined;
  url?: string | undefined;
  /** the built-in database server for this registered database (`mandate db ls`) */
  database?: string | undefined;
  dbUser?: string | undefined;
  /** `sse` selects the deprecated HTTP+SSE transport for a `url` server */
  transport?: McpTransport | undefined;
  labels?: Labels | undefined;
  owner: string;
  stateless?: boolean | undefined;
  driftMode?: DriftMode | undefined;
  secretAction?: SecretAction | undefined;
  envSecrets?: Record<string, string> | undefined;
  headerSecrets?: Record<string, string> | undefined;
}

/** What the proxy needs to reach a server, secrets included. Never leaves the process. */
export interface UpstreamSpec {
  server: McpServerEntry;
  env: Record<string, string>;
  headers: Record<string, string>;
}

/** Server names appear in URLs (`/mcp/<server>`) and resource strings (`mcp:<server>/…`). */
export const SERVER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const DB_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}$/;
/** How a `db` server is kept in the `url` column: a locator of Mandate's own, never dialed. */
const DB_LOCATOR = "mandate:db/";

function dbLocator(database: string, dbUser: string | undefined): string {
  return `${DB_LOCATOR}${encodeURIComponent(database)}${dbUser ? `?user=${encodeURIComponent(dbUser)}` : ""}`;
}

function parseDbLocator(url: string): { database: string; dbUser?: string } {
  const [path, query] = url.slice(DB_LOCATOR.length).split("?", 2);
  const dbUser = new URLSearchParams(query ?? "").get("user");
  return { database: decodeURIComponent(path ?? ""), ...(dbUser ? { dbUser } : {}) };
}
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}$/;
const HOP_BY_HOP = new Set(["host", "content-length", "content-type", "accept", "connection", "transfer-encoding", "mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name"]);

function toEntry(row: McpServerTable, secrets: { kind: string; name: string }[]): McpServerEntry {
  return {
    name: row.name,
    transport: row.transport,
    ...(row.command ? { command: JSON.parse(row.command) as string[] } : {}),
    ...(row.url ? (row.transport === "db" ? parseDbLocator(row.url) : { url: row.url }) : {}),
    labels: JSON.parse(row.labels) as Labels,
    owner: row.owner,
    stateless: row.stateless === 1,
    driftMode: row.drift_mode,
    secretAction: row.secret_action,
    createdAt: new Date(Number(row.created_at)).toISOString(),
    createdBy: row.created_by,
    secrets: {
      env: secrets.filter((s) => s.kind === "env").map((s) => s.name).sort(),
      headers: secrets.filter((s) => s.kind === "header").map((s) => s.name).sort(),
    },
  };
}

/** The MCP server catalog, stored with the rest of the control plane's state. */
export class McpCatalog {
  private readonly cache = new Map<string, UpstreamSpec>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  async add(input: NewMcpServer, createdBy: string): Promise<McpServerEntry> {
    if (!SERVER_NAME.test(input.name)) throw new MandateError("INVALID_ARGUMENT", `invalid server name ${JSON.stringify(input.name)}: use lowercase letters, digits, "-" and "_" (at most 63)`);
    if ([input.command, input.url, input.database].filter((v) => v !== undefined).length !== 1) throw new MandateError("INVALID_ARGUMENT", "give exactly one of --command (a stdio server the proxy spawns), --url (a remote server) and --db (the built-in server for a registered database)");
    if (input.dbUser !== undefined && input.database === undefined) throw new MandateError("INVALID_ARGUMENT", "--db-user applies to a --db server");
    let transport: McpTransport;
    if (input.database !== undefined) {
      if (!DB_NAME.test(input.database)) throw new MandateError("INVALID_ARGUMENT", `invalid database name ${JSON.stringify(input.database)}`);
      if (input.dbUser !== undefined && !DB_NAME.test(input.dbUser)) throw new MandateError("INVALID_ARGUMENT", `invalid database user ${JSON.stringify(input.dbUser)}`);
      if (input.transport && input.transport !== "db") throw new MandateError("INVALID_ARGUMENT", "a --db server is built in; it has no transport to choose");
      if (Object.keys({ ...input.envSecrets, ...input.headerSecrets }).length) throw new MandateError("INVALID_ARGUMENT", "a --db server needs no secrets: the database proxy holds the database passwords");
      // Each caller gets its own server so its statements carry its own identity.
      if (input.stateless) throw new MandateError("INVALID_ARGUMENT", "a --db server cannot be --stateless: it runs per caller, with that caller's identity");
      transport = "db";
    } else if (input.command !== undefined) {
      if (input.command.length === 0 || input.command.some((a) => a.length === 0 || a.includes("\0"))) throw new MandateError("INVALID_ARGUMENT", "--command must name a program");
      if (input.transport && input.transport !== "stdio") throw new MandateError("INVALID_ARGUMENT", "a --command server speaks stdio");
      if (input.headerSecrets && Object.keys(input.headerSecrets).length) throw new MandateError("INVALID_ARGUMENT", "--header-secret applies to --url servers; give a stdio server --env-secret");
      transport = "stdio";
    } else {
      let url: URL;
      try {
        url = new URL(input.url!);
      } catch {
        throw new MandateError("INVALID_ARGUMENT", `--url ${JSON.stringify(input.url)} is not a URL`);
      }
      if (url.protocol !== "https:" && url.protocol !== "http:") throw new MandateError("INVALID_ARGUMENT", "--url must be http:// or https://");
      if (url.username || url.password) throw new MandateError("INVALID_ARGUMENT", "put credentials in --header-secret, not in the URL");
      if (input.envSecrets && Object.keys(input.envSecrets).length) throw new MandateError("INVALID_ARGUMENT", "--env-secret applies to --command servers; give a remote server --header-secret");
      transport = input.transport === "sse" ? "sse" : "http";
    }
    for (const key of Object.keys(input.envSecrets ?? {})) if (!ENV_NAME.test(key)) throw new MandateError("INVALID_ARGUMENT", `invalid environment variable name ${JSON.stringify(key)}`);
    for (const key of Object.keys(input.headerSecrets ?? {})) {
      if (!HEADER_NAME.test(key) || HOP_BY_HOP.has(key.toLowerCase())) throw new MandateError("INVALID_ARGUMENT", `header ${JSON.stringify(key)} cannot be set as a secret`);
    }
    for (const value of [...Object.values(input.envSecrets ?? {}), ...Object.values(input.headerSecrets ?? {})]) {
      if (/[\r\n\0]/.test(value)) throw new MandateError("INVALID_ARGUMENT", "secret values cannot contain line breaks or NUL");
    }
    const row: McpServerTable = {
      name: input.name,
      transport,
      command: input.command ? JSON.stringify(input.command) : null,
      url: input.database !== undefined ? dbLocator(input.database, input.dbUser) : (input.url ?? null),
      labels: JSON.stringify(input.labels ?? {}),
      owner: input.owner,
      stateless: input.stateless ? 1 : 0,
      drift_mode: input.driftMode ?? "hide",
      secret_action: input.secretAction ?? "redact",
      created_at: this.now(),
      created_by: createdBy,
    };
    const secrets = [
      ...Object.entries(input.envSecrets ?? {}).map(([name, value]) => ({ server: input.name, kind: "env" as const, name, value })),
      ...Object.entries(input.headerSecrets ?? {}).map(([name, value]) => ({ server: input.name, kind: "header" as const, name, value })),
    ];
    try {
      await this.store.writeDurably(async (tx) => {
        await tx.insertInto("mcp_servers").values(row).execute();
        if (secrets.length) await tx.insertInto("mcp_server_secrets").values(secrets).execute();
      });
    } catch (error) {
      if (/unique|duplicate|primary key/i.test((error as Error).message)) throw new MandateError("ALREADY_EXISTS", `MCP server ${input.name} is already in the catalog; remove it first with \`mandate mcp servers rm ${input.name}\``);
      throw error;
    }
    this.cache.delete(input.name);
    return toEntry(row, secrets);
  }

  async list(): Promise<McpServerEntry[]> {
    const rows = await this.store.db.selectFrom("mcp_servers").selectAll().orderBy("name").execute();
    const secrets = await this.store.db.selectFrom("mcp_server_secrets").select(["server", "kind", "name"]).execute();
    return rows.map((row) => toEntry(row, secrets.filter((s) => s.server === row.name)));
  }

  async get(name: string): Promise<McpServerEntry> {
    return (await this.upstream(name)).server;
  }

  /** The server with its credentials, for the proxy only (cached; the catalog changes rarely). */
  async upstream(name: string): Promise<UpstreamSpec> {
    const cached = this.cache.get(name);
    if (cached) return cached;
    const row = await this.store.db.selectFrom("mcp_servers").selectAll().where("name", "=", name).executeTakeFirst();
    if (!row) throw new MandateError("NOT_FOUND", `no MCP server ${JSON.stringify(name)} in the catalog; see \`mandate mcp servers ls\``);
    const secrets = await this.store.db.selectFrom("mcp_server_secrets").selectAll().where("server", "=", name).execute();
    const spec: UpstreamSpec = {
      server: toEntry(row, secrets),
      env: Object.fromEntries(secrets.filter((s) => s.kind === "env").map((s) => [s.name, s.value])),
      headers: Object.fromEntries(secrets.filter((s) => s.kind === "header").map((s) => [s.name, s.value])),
    };
    this.cache.set(name, spec);
    return spec;
  }

  async remove(name: string): Promise<McpServerEntry> {
    const entry = await this.get(name);
    await this.store.writeDurably(async (tx) => {
      await tx.deleteFrom("mcp_server_secrets").where("server", "=", name).execute();
      await tx.deleteFrom("mcp_servers").where("name", "=", name).execute();
    });
    this.cache.delete(name);
    return entry;
  }
}

/**
 * Splits a `--command` string into argv the way a POSIX shell would for the simple
 * cases (whitespace, single and double quotes, backslash escapes), without running a shell.
 */
export function splitCommand(command: string): string[] {
  const args: string[] = [];
  let current = "";
  let inArg = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < command.length; i++) {
    const ch = command[i]!;
    if (quote === "'") {
      if (ch === "'") quote = undefined;
      else current += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = undefined;
      else if (ch === "\\" && i + 1 < command.length && '"\\$`'.includes(command[i + 1]!)) current += command[++i];
      else current += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inArg = true;
    } else if (ch === "\\" && i + 1 < command.length) {
      current += command[++i];
      inArg = true;
    } else if (/\s/.test(ch)) {
      if (inArg) args.push(current);
      current = "";
      inArg = false;
    } else {
      current += ch;
      inArg = true;
    }
  }
  if (quote) throw new MandateError("INVALID_ARGUMENT", "--command has an unterminated quote");
  if (inArg) args.push(current);
  return args;
}
