import { readFileSync, statSync } from "node:fs";
import { z } from "zod";
import { MandateError } from "../errors/index.js";
import type { Store } from "../store/index.js";
import type { UpstreamSslMode, UpstreamTarget } from "./upstream.js";

/**
 * Where a password comes from: `env:NAME` (the proxy's environment) or `file:/path` (a
 * file readable by the proxy's user only, re-read at every connection so it can be
 * rotated). The reference is stored and shown; the password never is.
 */
export const SecretRef = z.string().regex(/^(env:[A-Za-z_][A-Za-z0-9_]*|file:\/.+)$/, "a secret reference is env:VARIABLE or file:/absolute/path");

export const DbDefinition = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, "names are lower-case letters, digits, '.', '_' and '-'"),
    host: z.string().min(1).max(255),
    port: z.number().int().min(1).max(65535),
    /** the database name on the upstream server */
    database: z.string().min(1).max(63),
    /** the user connections act as unless the client names another */
    defaultUser: z.string().min(1).max(63),
    /** database user → where its password comes from (null: the server trusts it without one) */
    users: z.record(z.string().min(1).max(63), SecretRef.nullable()),
    sslMode: z.enum(["disable", "prefer", "require", "verify-full"]).default("prefer"),
    sslRootCert: z.string().optional(),
    labels: z.record(z.string(), z.string()).default({}),
  })
  .strict();
export type DbDefinition = z.infer<typeof DbDefinition>;

/** Public view: the same, it never held a password. */
export type DbView = DbDefinition & { createdAt: string; createdBy: string };

/** Parses `postgres://user@host:port/db?sslmode=…` (a password in the URI is refused: pass a secret reference). */
export function parseDatabaseUri(uri: string): Pick<DbDefinition, "host" | "port" | "database" | "defaultUser" | "sslMode"> & { sslRootCert?: string } {
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new MandateError("INVALID_ARGUMENT", `--uri ${JSON.stringify(uri)} is not a URL: use postgres://user@host:5432/database`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") throw new MandateError("INVALID_ARGUMENT", "--uri must start with postgres://");
  if (url.password) throw new MandateError("INVALID_ARGUMENT", "--uri must not contain a password: name where it comes from with --user-secret env:VAR or file:/path");
  const database = decodeURIComponent(url.pathname.replace(/^\//, ""));
  if (!url.hostname || !database) throw new MandateError("INVALID_ARGUMENT", "--uri needs a host and a database: postgres://user@host:5432/database");
  const sslMode = (url.searchParams.get("sslmode") ?? "prefer") as UpstreamSslMode;
  if (!["disable", "prefer", "require", "verify-full"].includes(sslMode)) throw new MandateError("INVALID_ARGUMENT", `sslmode ${sslMode} is not supported: disable, prefer, require or verify-full`);
  const rootCert = url.searchParams.get("sslrootcert");
  return {
    host: url.hostname.replace(/^\[|\]$/g, ""),
    port: url.port ? Number(url.port) : 5432,
    database,
    defaultUser: decodeURIComponent(url.username || "postgres"),
    sslMode,
    ...(rootCert ? { sslRootCert: rootCert } : {}),
  };
}

export function resolveSecret(ref: string, env: NodeJS.ProcessEnv = process.env): string {
  if (ref.startsWith("env:")) {
    const value = env[ref.slice(4)];
    if (!value) throw new MandateError("CONFIG_INVALID", `the environment variable ${ref.slice(4)} is not set in the proxy's environment`);
    return value;
  }
  const path = ref.slice(5);
  let text: string;
  try {
    // A password file others can read is a password others have.
    if ((statSync(path).mode & 0o077) !== 0) throw new MandateError("CONFIG_INVALID", `the password file ${path} is readable by group or others; chmod 600 it`);
    text = readFileSync(path, "utf8");
  } catch (error) {
    if (error instanceof MandateError) throw error;
    throw new MandateError("CONFIG_INVALID", `cannot read the password file ${path}: ${(error as Error).message}`);
  }
  return text.replace(/\r?\n$/, "");
}

/** Registered databases, cached in memory and re-read when they change. */
export class DbRegistry {
  private cache = new Map<string, DbView>();
  private loadedAt = 0;

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly refreshMs = 2000,
  ) {}

  async list(): Promise<DbView[]> {
    const rows = await this.store.db.selectFrom("db_databases").selectAll().orderBy("name").execute();
    const views = rows.map((r) => ({ ...(JSON.parse(r.definition) as DbDefinition), createdAt: new Date(Number(r.created_at)).toISOString(), createdBy: r.created_by }));
    this.cache = new Map(views.map((v) => [v.name, v]));
    this.loadedAt = this.now();
    return views;
  }

  async get(name: string): Promise<DbView | undefined> {
    if (this.now() - this.loadedAt > this.refreshMs || !this.cache.has(name)) await this.list();
    return this.cache.get(name);
  }

  async add(definition: DbDefinition, by: string): Promise<DbView> {
    if (!(definition.defaultUser in definition.users)) throw new MandateError("INVALID_ARGUMENT", `the default user ${definition.defaultUser} needs an entry in users`);
    await this.store.transaction(async (tx) => {
      const exists = await tx.selectFrom("db_databases").select("name").where("name", "=", definition.name).executeTakeFirst();
      if (exists) throw new MandateError("ALREADY_EXISTS", `database ${definition.name} is already registered; remove it first to change it`);
      await tx.insertInto("db_databases").values({ name: definition.name, definition: JSON.stringify(definition), created_at: this.now(), created_by: by }).execute();
    });
    await this.list();
    return this.cache.get(definition.name)!;
  }

  async remove(name: string): Promise<void> {
    const result = await this.store.db.deleteFrom("db_databases").where("name", "=", name).executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) throw new MandateError("NOT_FOUND", `no database ${name} is registered`);
    await this.list();
  }

  /** Where to connect for `dbUser`, with its password read now. */
  target(db: DbView, dbUser: string): UpstreamTarget {
    if (!(dbUser in db.users)) throw new MandateError("PERMISSION_DENIED", `database ${db.name} has no user ${dbUser} registered (registered: ${Object.keys(db.users).sort().join(", ")})`);
    const ref = db.users[dbUser];
    return { host: db.host, port: db.port, database: db.database, user: dbUser, password: ref ? resolveSecret(ref, this.env) : undefined, sslMode: db.sslMode, sslRootCert: db.sslRootCert };
  }
}
