import { mkdirSync } from "node:fs";
import { open, stat, unlink } from "node:fs/promises";
import { FileDataSync } from "./wal-sync.js";
import { join, resolve } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Transaction, sql } from "kysely";
import pg from "pg";
import { MandateError, isMandateError } from "../errors/index.js";
import { GroupCommit } from "./group-commit.js";
import { migrationProvider } from "./migrations.js";
import type { Database } from "./schema.js";
import { SqliteFileGuard } from "./sqlite-file-guard.js";
import { WalCheckpointer } from "./wal-checkpointer.js";

export type StoreKind = "sqlite" | "postgres";
export type StoreTx = Transaction<Database>;

export interface OpenStoreOptions {
  /** `postgres://…` for Postgres; otherwise SQLite in `dataDir`. */
  storage?: string | undefined;
  dataDir: string;
  /** How often SQLite's file is checked for deletion or loss of write permission. */
  fileCheckIntervalMs?: number;
}

const INIT_LOCK_KEY = 7_366_524_961; // arbitrary, constant across control planes

export class Store {
  private readonly groupCommit: GroupCommit<StoreTx>;
  /** Set when a WAL sync failed: what the page cache holds can no longer be trusted to reach the disk. */
  private syncFailure: MandateError | undefined;
  private readonly wal: FileDataSync | undefined;
  private checkpointer: WalCheckpointer | undefined;
  private batchStatements: Record<"normal" | "full" | "begin" | "commit" | "rollback", BetterSqlite3.Statement> | undefined;

  private constructor(
    readonly db: Kysely<Database>,
    readonly kind: StoreKind,
    /** Where the data lives, with any password removed. */
    readonly location: string,
    private readonly guard: SqliteFileGuard | undefined,
    private readonly sqlite?: BetterSqlite3.Database,
  ) {
    this.wal = kind === "sqlite" ? new FileDataSync(`${location}-wal`) : undefined;
    this.groupCommit =
      kind === "sqlite"
        ? // Batches commit with synchronous=NORMAL (no fsync on the event loop), and are acknowledged
          // only after the WAL is fdatasync'ed on the threadpool: docs/decisions/0005.
          new GroupCommit((body) => this.commitWithoutSync(body), 512, () => this.syncWal())
        : new GroupCommit((body) => this.db.transaction().execute(body));
  }

  private commitWithoutSync(body: (tx: StoreTx) => Promise<void>): Promise<void> {
    // One connection for the pragma, the transaction and the pragma back, so no other statement commits unsynced.
    // synchronous cannot change inside a transaction, hence around it. The five fixed statements run
    // prepared, straight on the connection: through Kysely they cost more than the batch's own writes.
    const statements = (this.batchStatements ??= {
      normal: this.sqlite!.prepare("pragma synchronous = NORMAL"),
      full: this.sqlite!.prepare("pragma synchronous = FULL"),
      begin: this.sqlite!.prepare("begin"),
      commit: this.sqlite!.prepare("commit"),
      rollback: this.sqlite!.prepare("rollback"),
    });
    return this.db.connection().execute(async (connection) => {
      statements.normal.run();
      try {
        statements.begin.run();
        try {
          // The connection is held and a transaction is open on it: what the body runs is inside it.
          await body(connection as unknown as StoreTx);
          statements.commit.run();
        } catch (error) {
          if (this.sqlite!.inTransaction) statements.rollback.run();
          throw error;
        }
      } finally {
        statements.full.run();
      }
      this.checkpointer?.noteCommit();
    });
  }

  /** Moves WAL checkpoints off the event loop (see WalCheckpointer); after migrations, so the file exists. */
  private startCheckpointer(): void {
    if (!this.sqlite) return;
    const database = this.sqlite;
    database.pragma("wal_autocheckpoint = 0");
    this.checkpointer = new WalCheckpointer(this.location, {
      catchUp: () => database.pragma("wal_checkpoint(PASSIVE)"),
      resumeInlineCheckpoints: () => database.open && database.pragma("wal_autocheckpoint = 1000"),
    });
  }

  private async syncWal(): Promise<void> {
    try {
      await this.wal!.sync();
    } catch (error) {
      this.syncFailure ??= new MandateError("STORE_UNAVAILABLE", `the database's write-ahead log could not be synced to disk (${(error as Error).message}); restart the control plane`, { cause: error });
      throw this.syncFailure;
    }
  }

  static async open(options: OpenStoreOptions): Promise<Store> {
    const storage = options.storage;
    if (storage && /^postgres(ql)?:\/\//.test(storage)) return Store.openPostgres(storage);
    if (storage && storage !== "sqlite") {
      throw new MandateError("CONFIG_INVALID", `unsupported --storage ${JSON.stringify(redactUrl(storage))}: use postgres://… or omit it for SQLite`);
    }
    return Store.openSqlite(options.dataDir, options.fileCheckIntervalMs);
  }

  private static async openSqlite(dataDir: string, intervalMs?: number): Promise<Store> {
    const dir = resolve(dataDir);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, "mandate.db");
    let database: BetterSqlite3.Database;
    try {
      database = new BetterSqlite3(path);
      // WAL lets readers proceed during writes; synchronous=FULL makes every
      // acknowledged commit survive power loss, which "no audit, no action" needs.
      database.pragma("journal_mode = WAL");
      database.pragma("synchronous = FULL");
      database.pragma("foreign_keys = ON");
      database.pragma("busy_timeout = 5000");
    } catch (error) {
      throw new MandateError("STORE_UNAVAILABLE", `cannot open SQLite database ${path}: ${(error as Error).message}`, { cause: error });
    }
    const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
    const guard = new SqliteFileGuard(path, intervalMs);
    const store = new Store(db, "sqlite", path, guard, database);
    await store.migrate();
    store.startCheckpointer();
    await guard.start();
    return store;
  }

  private static async openPostgres(url: string): Promise<Store> {
    const pool = new pg.Pool({
      connectionString: url,
      max: 10,
      connectionTimeoutMillis: 5000,
      // bigint columns hold millisecond timestamps and counters, all far below 2^53.
      types: {
        getTypeParser: ((oid: number, format?: string) =>
          oid === 20 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
      },
    });
    pool.on("error", () => {
      // An idle client dropped by the server: the pool replaces it; queries report their own errors.
    });
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const store = new Store(db, "postgres", redactUrl(url), undefined);
    try {
      await sql`select 1`.execute(db);
    } catch (error) {
      await db.destroy();
      throw new MandateError("STORE_UNAVAILABLE", `cannot connect to PostgreSQL at ${redactUrl(url)}: ${(error as Error).message}`, { cause: error });
    }
    await store.migrate();
    return store;
  }

  private async migrate(): Promise<void> {
    // Serialize migrations across control planes starting together on one Postgres.
    await this.withInitLock(async () => {
      // Kysely looks for its bookkeeping tables in every schema unless told which one; on a
      // database shared by several deployments (one schema each) it would find another's.
      const schema = this.kind === "postgres" ? (await sql<{ schema: string }>`select current_schema() as schema`.execute(this.db)).rows[0]?.schema : undefined;
      // Modules add migrations in their own numbered ranges (0100 access, 0200 agent/join, …), so a
      // deployment upgraded across several modules' releases may meet them out of name order.
      const migrator = new Migrator({ db: this.db, provider: migrationProvider(this.kind), allowUnorderedMigrations: true, ...(schema ? { migrationTableSchema: schema } : {}) });
      const { error, results } = await migrator.migrateToLatest();
      if (error) {
        const failed = results?.find((r) => r.status === "Error")?.migrationName;
        throw new MandateError("STORE_UNAVAILABLE", `migration ${failed ?? "?"} failed: ${(error as Error).message}`, { cause: error });
      }
    });
  }

  /**
   * Runs `fn` while holding a cluster-wide lock (a Postgres advisory lock, or a lock
   * file beside the SQLite database), so that migrations and first-start initialization
   * (trust domain, CA) happen exactly once even when several processes start together.
   */
  async withInitLock<T>(fn: () => Promise<T>): Promise<T> {
    if (this.kind === "sqlite") return withLockFile(`${this.location}.init-lock`, fn);
    // Session-level advisory locks belong to one connection: take and release it on the same one.
    return this.db.connection().execute(async (connection) => {
      await sql`select pg_advisory_lock(${INIT_LOCK_KEY})`.execute(connection);
      try {
        return await fn();
      } finally {
        await sql`select pg_advisory_unlock(${INIT_LOCK_KEY})`.execute(connection);
      }
    });
  }

  /** Throws STORE_UNAVAILABLE / STORE_READ_ONLY when writes must not be attempted. */
  assertWritable(): void {
    if (this.syncFailure) throw this.syncFailure;
    this.guard?.assertHealthy();
  }

  get healthy(): boolean {
    return this.guard?.healthy ?? true;
  }

  /** Re-checks the SQLite file now (tests and health endpoints). */
  async checkHealth(): Promise<boolean> {
    await this.guard?.check();
    return this.healthy;
  }

  /**
   * A durable write: resolves only once committed, batched with concurrent writes.
   * Used for the records an action depends on (issuance, audit).
   */
  writeDurably(op: (tx: StoreTx) => Promise<void>): Promise<void> {
    return this.groupCommitted(op, false);
  }

  private async groupCommitted(op: (tx: StoreTx) => Promise<void>, deferred: boolean): Promise<void> {
    this.assertWritable();
    try {
      await (deferred ? this.groupCommit.writeDeferred(op) : this.groupCommit.write(op));
    } catch (error) {
      throw asStoreError(error);
    }
  }

  /**
   * SQLite only: a statement on the one connection, for the caller to keep and run
   * directly, skipping Kysely's builder and executor, which on a hot path cost several
   * times what a small statement does. Run it only inside a `writeDurably` or
   * `transaction` body: there the transaction holds SQLite's single connection, so the
   * statement runs inside that transaction. `undefined` on Postgres.
   */
  prepareSqliteStatement(source: string): BetterSqlite3.Statement | undefined {
    return this.sqlite?.prepare(source);
  }

  /**
   * A durable write no caller waits on before acting (see GroupCommit.writeDeferred): it
   * commits with the next `writeDurably` batch, or by itself within a few milliseconds.
   */
  writeDurablyDeferred(op: (tx: StoreTx) => Promise<void>): Promise<void> {
    return this.groupCommitted(op, true);
  }

  /** Commits every deferred write now (reports, shutdown, tests); resolves once they are durable. */
  async drainWrites(): Promise<void> {
    await this.groupCommit.drain();
  }

  /** A transaction of its own, for conditional writes that must not share a batch's fate. */
  async transaction<T>(fn: (tx: StoreTx) => Promise<T>): Promise<T> {
    this.assertWritable();
    try {
      return await this.db.transaction().execute(fn);
    } catch (error) {
      throw asStoreError(error);
    }
  }

  async getMeta(key: string): Promise<string | undefined> {
    const row = await this.db.selectFrom("meta").select("value").where("key", "=", key).executeTakeFirst();
    return row?.value;
  }

  async close(): Promise<void> {
    this.guard?.stop();
    await this.groupCommit.drain();
    await this.checkpointer?.close();
    this.wal?.close();
    await this.db.destroy();
  }
}

function asStoreError(error: unknown): unknown {
  if (isMandateError(error)) return error;
  const code = (error as { code?: string }).code ?? "";
  if (code.startsWith("SQLITE_READONLY")) {
    return new MandateError("STORE_READ_ONLY", `the database is read-only: ${(error as Error).message}`, { cause: error });
  }
  if (code.startsWith("SQLITE_IOERR") || code === "SQLITE_FULL" || code === "SQLITE_CANTOPEN" || code === "ECONNREFUSED" || code === "57P01") {
    return new MandateError("STORE_UNAVAILABLE", `the database cannot be written: ${(error as Error).message}`, { cause: error });
  }
  return error;
}

export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.toString();
  } catch {
    return "<unparseable URL>";
  }
}

/**
 * Kysely prepares every statement anew; on SQLite, preparing costs more than running
 * the small queries issuance makes. The query shapes are few and fixed (values are
 * bound parameters), so prepared statements are cached by SQL text.
 */
function withStatementCache(database: BetterSqlite3.Database): BetterSqlite3.Database {
  const cache = new Map<string, BetterSqlite3.Statement>();
  const prepare = database.prepare.bind(database);
  return new Proxy(database, {
    get(target, property, receiver) {
      if (property === "prepare") {
        return (source: string) => {
          let statement = cache.get(source);
          if (!statement) {
            statement = prepare(source);
            if (cache.size < 1000) cache.set(source, statement);
          }
          return statement;
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/** Exclusive creation of a file is the lock; a lock older than a minute is a crashed holder's and is broken. */
async function withLockFile<T>(path: string, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const handle = await open(path, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const age = await stat(path).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (age > 60_000) await unlink(path).catch(() => undefined);
      if (Date.now() > deadline) throw new MandateError("STORE_UNAVAILABLE", `another process holds ${path}; if none is starting, remove the file`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    return await fn();
  } finally {
    await unlink(path).catch(() => undefined);
  }
}
