import { join } from "node:path";
import type { Duplex } from "node:stream";
import type { SecureContextOptions, TLSSocket } from "node:tls";
import type { AuditLog } from "../audit/index.js";
import type { LockRegistry } from "../identity/index.js";
import type { AccessGate, AuthenticatedCaller } from "../policy/index.js";
import type { Store } from "../store/index.js";
import { ClassificationCache, loadParser } from "./classify.js";
import { DbAuditJournal } from "./journal.js";
import { type InProcessBinding, openInProcessSession } from "./in-process.js";
import { DbListener } from "./listener.js";
import { DbRegistry } from "./registry.js";
import { CancelKeys, type DbSession, type SessionDeps } from "./session.js";

export const DEFAULT_DB_LISTEN = "127.0.0.1:7432";
export const DEFAULT_DB_PORT = 7432;

export interface DbServiceOptions {
  store: Store;
  audit: AuditLog;
  locks: LockRegistry;
  gate: AccessGate;
  dataDir: string;
  /** undefined: no listener (`--db-listen off`) */
  listen?: { host: string; port: number } | undefined;
  tlsOptions: () => Pick<SecureContextOptions, "key" | "cert" | "ca">;
  verifyPeer: (socket: TLSSocket) => AuthenticatedCaller;
  keepLiterals?: boolean;
  /** see docs/decisions: "writes" (default) or "all" */
  auditDurability?: "all" | "writes";
  decisionTtlMs?: number;
  env?: NodeJS.ProcessEnv;
  now: () => number;
  log: (message: string, error?: unknown) => void;
}

/** The database proxy: registry, audit journal, classification cache and the PostgreSQL listener. */
export class DbService {
  private readonly inProcess = new Set<DbSession>();
  private readonly poll: NodeJS.Timeout;

  private constructor(
    readonly registry: DbRegistry,
    readonly journal: DbAuditJournal,
    readonly cache: ClassificationCache,
    readonly listener: DbListener | undefined,
    readonly port: number | undefined,
    private readonly sessionDeps: SessionDeps,
  ) {
    // As the listener does for its connections: a lock or an expiry ends idle sessions too.
    this.poll = setInterval(() => {
      for (const session of this.inProcess) session.checkIdentity();
    }, 1000);
    this.poll.unref();
  }

  /**
   * A connection into the proxy for an already authenticated caller (the MCP proxy's
   * built-in database server): the same session, classification, gate and journal as a
   * TLS client on the listener, with no network in between. Give the stream to
   * `pg.Client({ stream })`.
   */
  async openInProcess(caller: AuthenticatedCaller, binding: InProcessBinding): Promise<Duplex> {
    await loadParser();
    return openInProcessSession(this.sessionDeps, caller, binding, (session) => {
      this.inProcess.add(session);
      session.onClose = () => this.inProcess.delete(session);
    });
  }

  static async start(options: DbServiceOptions): Promise<DbService> {
    // The parser (WebAssembly) is needed only by the listener's sessions.
    if (options.listen) await loadParser();
    const registry = new DbRegistry(options.store, options.now, options.env);
    const journal = await DbAuditJournal.open(join(options.dataDir, "db-audit"), options.audit, (error) => options.log("database audit journal write failed", error));
    const cache = new ClassificationCache();
    let listener: DbListener | undefined;
    let port: number | undefined;
    const deps = { registry, gate: options.gate, journal, locks: options.locks, cache, keepLiterals: options.keepLiterals ?? false, auditDurability: options.auditDurability ?? "all", decisionTtlMs: options.decisionTtlMs ?? 500, now: options.now } as const;
    if (options.listen) {
      listener = new DbListener({
        host: options.listen.host,
        port: options.listen.port,
        tlsOptions: options.tlsOptions,
        verifyPeer: options.verifyPeer,
        deps,
      });
      try {
        port = await listener.start();
      } catch (error) {
        await journal.close();
        throw error;
      }
    }
    return new DbService(registry, journal, cache, listener, port, { ...deps, cancels: new CancelKeys() });
  }

  async close(): Promise<void> {
    clearInterval(this.poll);
    for (const session of this.inProcess) session.close("the proxy is shutting down");
    await this.listener?.close();
    await this.journal.close();
  }
}
