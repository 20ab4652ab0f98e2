import { randomBytes, randomInt, timingSafeEqual } from "node:crypto";
import type { Duplex } from "node:stream";
import type { AuditActor, AuditEventInput } from "../audit/index.js";
import { ulid } from "../audit/index.js";
import { MandateError, isMandateError } from "../errors/index.js";
import type { LockRegistry } from "../identity/index.js";
import type { AccessGate, AuthenticatedCaller, GateDecision, StatementClass } from "../policy/index.js";
import { type Classification, type ClassificationCache, UnparseableStatement } from "./classify.js";
import type { DbAuditJournal } from "./journal.js";
import { BodyReader, type Frame, FrameReader, ProtocolError, backendKeyData, cstring, errorResponse, frame, parseErrorFields, readyForQuery, rowsFromCommandTag, authenticationOk, negotiateProtocolVersion } from "./protocol.js";
import type { DbRegistry, DbView } from "./registry.js";
import { type UpstreamConnection, UpstreamError, connectUpstream, sendUpstreamCancel } from "./upstream.js";

/** What a statement is, for policy: the parser's classification, or what the proxy knows of a prepared name. */
type Shape = Pick<Classification, "statements" | "tables" | "functions" | "count"> & { redacted: string };

export interface SessionDeps {
  registry: DbRegistry;
  gate: AccessGate;
  journal: DbAuditJournal;
  locks: LockRegistry;
  cache: ClassificationCache;
  cancels: CancelKeys;
  /** keep literals in audited statement text (default: replaced by $n) */
  keepLiterals: boolean;
  /** "writes": reads are written to the journal before they run and synced within ms; "all": every statement waits for fdatasync */
  auditDurability: "all" | "writes";
  /** how long an allow decision is reused for the same shape on one connection */
  decisionTtlMs: number;
  now: () => number;
}

/** Startup parameters forwarded to the real server; everything else (options, replication) stays here. */
const FORWARDED_PARAMS = new Set(["application_name", "client_encoding", "datestyle", "timezone", "intervalstyle", "extra_float_digits", "search_path", "lc_monetary", "lc_numeric", "lc_time"]);

/** Units of upstream work whose responses come back in order. */
type Unit =
  | { kind: "query"; id?: string; started: number; rows: number; error?: string; shape?: Shape }
  | { kind: "execute"; id: string; started: number; rows: number }
  | { kind: "denied"; nonce: string; error: Buffer }
  | { kind: "sync" };

/** Our BackendKeyData → the upstream connection's, for CancelRequest forwarding. */
export class CancelKeys {
  private readonly keys = new Map<number, { secret: Buffer; cancel: () => Promise<void> }>();

  issue(cancel: () => Promise<void>): { processId: number; secret: Buffer } {
    let processId: number;
    do processId = randomInt(1, 2 ** 31 - 1);
    while (this.keys.has(processId));
    const secret = randomBytes(4);
    this.keys.set(processId, { secret, cancel });
    return { processId, secret };
  }

  release(processId: number): void {
    this.keys.delete(processId);
  }

  /** A wrong key is ignored silently, as PostgreSQL does. */
  async cancel(processId: number, secret: Buffer): Promise<boolean> {
    const entry = this.keys.get(processId);
    if (!entry || entry.secret.length !== secret.length) return false;
    if (!timingSafeEqual(entry.secret, secret)) return false;
    await entry.cancel();
    return true;
  }
}

const SENTINEL_PREFIX = "mandate_denied_";
export const DEFAULT_USER_ALIAS = "@default";

/**
 * One client connection after TLS and certificate login: resolves the registered
 * database and user, opens the upstream connection, then relays, stopping every
 * statement at the access gate. A refused statement is replaced upstream by a sentinel
 * that fails to parse, so the server itself aborts the transaction or skips to Sync
 * exactly as it would for any error, and its error is rewritten into the refusal.
 */
export class DbSession {
  readonly id = ulid();
  private upstream: UpstreamConnection | undefined;
  private db: DbView | undefined;
  private dbUser = "";
  private delegationToken: string | undefined;
  private readonly clientReader = new FrameReader();
  private readonly units: Unit[] = [];
  private readonly prepared = new Map<string, Shape>();
  private readonly portals = new Map<string, Shape>();
  private readonly decisions = new Map<string, { decision: GateDecision; until: number }>();
  private skippingToSync = false;
  private transactionStatus = "I";
  private processing: Promise<void> = Promise.resolve();
  private batchesInFlight = 0;
  private closed = false;
  private cancelKey: { processId: number; secret: Buffer } | undefined;
  private readonly actor: AuditActor;

  constructor(
    /** a TLS socket from the listener, or one end of an in-process pair (DbService.openInProcess) */
    private readonly client: Duplex,
    private readonly caller: AuthenticatedCaller,
    private readonly address: string,
    private readonly deps: SessionDeps,
  ) {
    const kind = caller.kind === "agent" ? "agent" : caller.kind === "admin" ? "admin" : caller.kind === "user" ? "user" : "anonymous";
    this.actor = { kind, spiffeId: caller.spiffeId, ...(caller.agent ? { agent: caller.agent } : {}), ...(caller.instanceId ? { instance: caller.instanceId } : {}), ...(caller.user ? { user: caller.user } : {}), address };
  }

  private intents = 0;

  /** Unique in the journal: the session's ULID and a counter (no randomness per statement). */
  private nextIntentId(): string {
    return `${this.id}.${++this.intents}`;
  }

  get identity(): AuthenticatedCaller {
    return this.caller;
  }

  /** Runs the session from the client's StartupMessage; `initial` is what the client sent after it. */
  async start(version: number, params: Map<string, string>, initial: Buffer): Promise<void> {
    try {
      await this.open(version, params);
    } catch (error) {
      this.fatal(error instanceof UpstreamError ? error.sqlState : isMandateError(error) && error.code === "NOT_FOUND" ? "3D000" : "28000", (error as Error).message);
      this.record("db.connect", "error", (error as Error).message);
      return;
    }
    this.record("db.connect", "ok");
    this.client.on("data", (chunk: Buffer) => this.onClientData(chunk));
    this.client.on("close", () => this.onClientGone());
    this.client.on("error", () => this.onClientGone());
    if (initial.length > 0) this.onClientData(initial);
  }

  private async open(version: number, params: Map<string, string>): Promise<void> {
    if (params.has("replication") && params.get("replication") !== "false" && params.get("replication") !== "0") throw new ProtocolError("replication connections are not proxied", "28000");
    const name = params.get("database") || params.get("user") || "";
    const db = await this.deps.registry.get(name);
    if (!db) throw new MandateError("NOT_FOUND", `database ${JSON.stringify(name)} is not registered with Mandate (mandate db ls)`);
    this.db = db;
    // "@default" (not a plain identifier, so no real role is shadowed) asks for the database's default user.
    const requested = params.get("user");
    this.dbUser = !requested || requested === DEFAULT_USER_ALIAS ? db.defaultUser : requested;
    this.delegationToken = delegationFromOptions(params.get("options") ?? "") ?? params.get("mandate.delegation");
    const forwarded: Record<string, string> = {};
    for (const [key, value] of params) if (FORWARDED_PARAMS.has(key.toLowerCase())) forwarded[key] = value;
    let target;
    try {
      target = this.deps.registry.target(db, this.dbUser);
    } catch (error) {
      throw new UpstreamError((error as Error).message, "28000");
    }
    this.upstream = await connectUpstream({ ...target, params: forwarded });
    const upstream = this.upstream;
    this.cancelKey = this.deps.cancels.issue(() => sendUpstreamCancel(target, upstream.processId, upstream.secretKey));
    const unsupported = [...params.keys()].filter((k) => k.startsWith("_pq_."));
    const hello = [
      ...((version & 0xffff) > 0 || unsupported.length ? [negotiateProtocolVersion(unsupported)] : []),
      authenticationOk(),
      ...upstream.parameterFrames,
      backendKeyData(this.cancelKey.processId, this.cancelKey.secret),
      readyForQuery("I"),
    ];
    this.client.write(Buffer.concat(hello));
    upstream.socket.on("data", (chunk: Buffer) => this.onUpstreamData(chunk));
    upstream.socket.on("close", () => this.onUpstreamGone());
    upstream.socket.on("error", () => this.onUpstreamGone());
    for (const f of upstream.leftovers) this.onUpstreamData(f.raw);
    const rest = upstream.reader.takeRemainder();
    if (rest.length) this.onUpstreamData(rest);
  }

  // ---- client → upstream ----

  private onClientData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.clientReader.push(chunk);
    } catch (error) {
      this.fatal((error as ProtocolError).sqlState ?? "08P01", (error as Error).message);
      return;
    }
    if (frames.length === 0) return;
    // Backpressure only when messages arrive faster than they are admitted.
    if (++this.batchesInFlight > 1) this.client.pause();
    this.processing = this.processing
      .then(async () => {
        const out: Buffer[] = [];
        for (const f of frames) {
          if (this.closed) return;
          const sent = await this.handleClientFrame(f, out);
          if (!sent) break;
        }
        if (out.length && !this.closed) this.upstream!.socket.write(out.length === 1 ? out[0]! : Buffer.concat(out));
      })
      .catch((error: unknown) => this.fatal("XX000", `proxy error: ${(error as Error).message}`))
      .finally(() => {
        if (--this.batchesInFlight === 0 && !this.closed) this.client.resume();
      });
  }

  /** Appends what goes upstream for one client message to `out`; false ends the connection. */
  private async handleClientFrame(f: Frame, out: Buffer[]): Promise<boolean> {
    switch (f.type) {
      case "Q": {
        const text = new BodyReader(f.body).cstring();
        const verdict = await this.admit(this.shapeOfText(text), "simple", out);
        if (verdict.allowed) {
          out.push(f.raw);
          this.units.push({ kind: "query", id: verdict.id, started: performance.now(), rows: 0, shape: verdict.shape });
        } else this.deny(out, verdict.error, "query");
        return true;
      }
      case "P": {
        if (this.skippingToSync) return true;
        const body = new BodyReader(f.body);
        const name = body.cstring();
        const text = body.cstring();
        const shape = this.shapeOfText(text);
        const verdict = await this.authorizeOnly(shape, "extended");
        if (verdict.allowed) {
          this.prepared.set(name, verdict.shape);
          out.push(f.raw);
        } else {
          // The sentinel replaces the server's unnamed statement too.
          this.prepared.delete("");
          this.deny(out, verdict.error, "extended");
        }
        return true;
      }
      case "B": {
        if (this.skippingToSync) return true;
        const body = new BodyReader(f.body);
        const portal = body.cstring();
        const statement = body.cstring();
        const shape = this.prepared.get(statement);
        const verdict = await this.authorizeOnly(shape ?? { error: `prepared statement ${JSON.stringify(statement)} was not prepared through this proxy` }, "extended");
        if (verdict.allowed) {
          this.portals.set(portal, verdict.shape);
          out.push(f.raw);
        } else this.deny(out, verdict.error, "extended");
        return true;
      }
      case "E": {
        if (this.skippingToSync) return true;
        const portal = new BodyReader(f.body).cstring();
        const shape = this.portals.get(portal);
        if (!shape) {
          this.deny(out, this.refusal("42501", `portal ${JSON.stringify(portal)} was not bound through this proxy`), "extended");
          return true;
        }
        const id = this.nextIntentId();
        if (!(await this.journalIntent(id, shape, "extended", out))) return false;
        out.push(f.raw);
        this.units.push({ kind: "execute", id, started: performance.now(), rows: 0 });
        return true;
      }
      case "C": {
        if (this.skippingToSync) return true;
        const kind = String.fromCharCode(f.body[0] ?? 0);
        const name = f.body.toString("utf8", 1, Math.max(1, f.body.indexOf(0, 1)));
        if (kind === "S") this.prepared.delete(name);
        else if (kind === "P") this.portals.delete(name);
        out.push(f.raw);
        return true;
      }
      case "D":
        if (!this.skippingToSync) out.push(f.raw);
        return true;
      case "H":
        out.push(f.raw);
        return true;
      case "S":
        this.skippingToSync = false;
        out.push(f.raw);
        this.units.push({ kind: "sync" });
        return true;
      case "F": {
        const oid = f.body.length >= 4 ? f.body.readUInt32BE(0) : 0;
        const shape: Shape = { statements: ["function"], tables: [], functions: [`oid:${oid}`], count: 1, redacted: `<function call oid ${oid}>` };
        const verdict = await this.admit(shape, "function-call", out);
        if (verdict.allowed) {
          out.push(f.raw);
          this.units.push({ kind: "query", id: verdict.id, started: performance.now(), rows: 0, shape });
        } else this.deny(out, verdict.error, "query");
        return true;
      }
      case "d":
      case "c":
      case "f":
        out.push(f.raw);
        return true;
      case "X":
        out.push(f.raw);
        if (out.length) this.upstream!.socket.write(Buffer.concat(out));
        out.length = 0;
        this.close();
        return false;
      default:
        this.fatal("08P01", `unexpected message type ${JSON.stringify(f.type)} from the client`);
        return false;
    }
  }

  private shapeOfText(text: string): Shape | { error: string; code?: string; redacted?: string } {
    let classification: Classification;
    try {
      classification = this.deps.cache.classify(text);
    } catch (error) {
      if (error instanceof UnparseableStatement) return { error: `the statement cannot be parsed, so it is not run: ${error.message}`, code: "42601", redacted: "<unparseable>" };
      throw error;
    }
    // The common case (no PREPARE/EXECUTE/DEALLOCATE): the classification is the shape.
    if (classification.executes.length === 0 && classification.prepares.length === 0 && classification.deallocates.length === 0 && !this.deps.keepLiterals) return classification;
    let statements = new Set<StatementClass>(classification.statements);
    let tables = new Set(classification.tables);
    let functions = new Set(classification.functions);
    // PREPARE first, so `PREPARE p AS …; EXECUTE p` in one string is known; the PREPARE's own
    // classes already include what it prepares.
    for (const p of classification.prepares) this.prepared.set(p.name, { ...p.classification, redacted: classification.redacted });
    // EXECUTE name does what name was prepared to do; an unknown name is refused.
    for (const name of classification.executes) {
      const known = this.prepared.get(name);
      if (!known) return { error: `prepared statement ${JSON.stringify(name)} was not prepared through this proxy`, redacted: classification.redacted };
      statements = new Set([...statements, ...known.statements]);
      tables = new Set([...tables, ...known.tables]);
      functions = new Set([...functions, ...known.functions]);
    }
    for (const name of classification.deallocates) {
      if (name === "*") this.prepared.clear();
      else this.prepared.delete(name);
    }
    return {
      statements: [...statements].sort(),
      tables: [...tables].sort(),
      functions: [...functions].sort(),
      count: classification.count,
      redacted: this.deps.keepLiterals ? text : classification.redacted,
    };
  }

  /** Authorizes and, when allowed, makes the intent durable: the statement may then go upstream. */
  private async admit(shape: Shape | { error: string; code?: string; redacted?: string }, protocol: string, out: Buffer[]): Promise<{ allowed: true; id: string; shape: Shape } | { allowed: false; error: Buffer }> {
    const verdict = await this.authorizeOnly(shape, protocol);
    if (!verdict.allowed) return verdict;
    const id = this.nextIntentId();
    if (!(await this.journalIntent(id, verdict.shape, protocol, out))) return { allowed: false, error: this.refusal("58030", "the audit journal is unavailable, so the statement is not run") };
    return { allowed: true, id, shape: verdict.shape };
  }

  private async journalIntent(id: string, shape: Shape, protocol: string, _out: Buffer[]): Promise<boolean> {
    const decision = this.decisions.get(decisionKey(shape))?.decision;
    try {
      // Reads are journaled before they run; anything that can change state waits for the disk too.
      const durable = this.deps.auditDurability === "all" || !isReadOnly(shape);
      await this.deps.journal.intent(id, this.event(shape, protocol, decision, "INTENT", { status: "ok" }), durable);
      return true;
    } catch {
      return false;
    }
  }

  private async authorizeOnly(shape: Shape | { error: string; code?: string; redacted?: string }, protocol: string): Promise<{ allowed: true; shape: Shape } | { allowed: false; error: Buffer }> {
    const identityProblem = this.identityProblem();
    if (identityProblem) {
      this.fatal("28000", identityProblem);
      return { allowed: false, error: Buffer.alloc(0) };
    }
    if ("error" in shape) {
      this.deps.journal.record(this.event({ statements: [], tables: [], functions: [], count: 0, redacted: shape.redacted ?? "" }, protocol, undefined, "PERMISSION_DENIED", { status: "error", error: "PERMISSION_DENIED", message: shape.error }));
      return { allowed: false, error: this.refusal(shape.code ?? "42501", `permission denied by Mandate: ${shape.error}`) };
    }
    if (shape.count === 0) return { allowed: true, shape };
    const key = decisionKey(shape);
    const cached = this.decisions.get(key);
    const now = this.deps.now();
    let decision: GateDecision;
    if (cached && cached.until > now) decision = cached.decision;
    else {
      decision = await this.deps.gate.authorize({
        caller: this.caller,
        delegationToken: this.delegationToken,
        action: "db.query",
        resource: { kind: "db", database: this.db!.name, dbUser: this.dbUser, statements: shape.statements, tables: shape.tables, functions: shape.functions, labels: this.db!.labels },
        context: { protocol, statementCount: shape.count, statement: shape.redacted },
        correlation: { session: this.id },
      });
      if (decision.allow && decision.obligations.length === 0) {
        const until = Math.min(now + this.deps.decisionTtlMs, decision.delegation?.expiresAt ?? Infinity, this.caller.notAfter.getTime());
        if (this.decisions.size > 1000) this.decisions.clear();
        this.decisions.set(key, { decision, until });
      }
    }
    if (decision.allow) return { allowed: true, shape };
    this.deps.journal.record(this.event(shape, protocol, decision, "PERMISSION_DENIED", { status: "error", error: "PERMISSION_DENIED", message: decision.reasons[0] ?? "denied" }));
    const reason = decision.reasons[0] ?? "denied by policy";
    return {
      allowed: false,
      error: this.refusal("42501", `permission denied by Mandate: ${reason}`, `statement classes: ${shape.statements.join(", ") || "-"}; tables: ${shape.tables.join(", ") || "-"}${shape.functions.length ? `; functions: ${shape.functions.join(", ")}` : ""}`, decision.policyIds.length ? `rule: ${decision.policyIds.join(", ")}` : undefined),
    };
  }

  /** Expired certificate or a lock on the identity: the connection ends. */
  private identityProblem(): string | undefined {
    if (this.caller.notAfter.getTime() <= this.deps.now()) return `the client certificate expired at ${this.caller.notAfter.toISOString()}; reconnect with the renewed SVID`;
    try {
      this.deps.locks.assertFresh();
      this.deps.locks.assertNotLocked({ spiffeId: this.caller.spiffeId, agent: this.caller.agent, serialHex: this.caller.serialHex });
    } catch (error) {
      return (error as Error).message;
    }
    return undefined;
  }

  /** Called by the listener's lock poll. */
  checkIdentity(): void {
    if (this.closed) return;
    const problem = this.identityProblem();
    if (problem) this.fatal("28000", problem);
  }

  private refusal(code: string, message: string, detail?: string, hint?: string): Buffer {
    return errorResponse({ severity: "ERROR", code, message, detail, hint });
  }

  /** Sends a sentinel the server rejects, so its error handling (abort, skip to Sync) is the real one. */
  private deny(out: Buffer[], error: Buffer, mode: "query" | "extended"): void {
    if (error.length === 0) return;
    const nonce = `${SENTINEL_PREFIX}${randomBytes(8).toString("hex")}`;
    if (mode === "query") out.push(frame("Q", cstring(nonce)));
    else {
      out.push(frame("P", Buffer.concat([cstring(""), cstring(nonce), Buffer.from([0, 0])])));
      this.skippingToSync = true;
    }
    this.units.push({ kind: "denied", nonce, error });
  }

  private event(shape: Shape, protocol: string, decision: GateDecision | undefined, code: string, outcome: AuditEventInput["outcome"]): AuditEventInput {
    const delegation = decision?.delegation;
    return {
      type: "db.query",
      code,
      actor: this.actor,
      ...(delegation ? { delegation: { id: delegation.id, delegator: delegation.delegator, task: delegation.task } } : {}),
      correlation: { session: this.id, ...(delegation ? { task: delegation.task } : {}) },
      target: { database: this.db?.name ?? "", dbUser: this.dbUser },
      ...(decision ? { decision: { allow: decision.allow, reasons: decision.reasons, ...(decision.policyIds.length ? { policy: decision.policyIds.join(",") } : {}) } } : code === "PERMISSION_DENIED" ? { decision: { allow: false, reasons: [outcome.message ?? "denied"] } } : {}),
      outcome,
      details: { statement: shape.redacted, statements: shape.statements, tables: shape.tables, functions: shape.functions, statementCount: shape.count, protocol },
    };
  }

  private record(type: string, status: "ok" | "error", message?: string): void {
    this.deps.journal.record({
      type,
      code: status === "ok" ? "OK" : "PERMISSION_DENIED",
      actor: this.actor,
      correlation: { session: this.id },
      target: { database: this.db?.name ?? "", dbUser: this.dbUser },
      outcome: { status, ...(message ? { message } : {}) },
    });
  }

  // ---- upstream → client ----

  private readonly upstreamReader = new FrameReader(1024 * 1024 * 1024);

  private onUpstreamData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.upstreamReader.push(chunk);
    } catch (error) {
      this.fatal("08P01", `the database server sent a malformed message: ${(error as Error).message}`);
      return;
    }
    const out: Buffer[] = [];
    for (const f of frames) {
      const replaced = this.observe(f);
      out.push(replaced ?? f.raw);
    }
    if (out.length && !this.closed) {
      const ok = this.client.write(out.length === 1 ? out[0]! : Buffer.concat(out));
      if (!ok) {
        this.upstream!.socket.pause();
        this.client.once("drain", () => this.upstream?.socket.resume());
      }
    }
  }

  /** Tracks responses against the unit queue; returns a replacement frame for a sentinel's error. */
  private observe(f: Frame): Buffer | undefined {
    const head = this.units[0];
    switch (f.type) {
      case "C": {
        const rows = rowsFromCommandTag(f.body.toString("utf8", 0, Math.max(0, f.body.length - 1)));
        if (head?.kind === "execute") {
          head.rows += rows ?? 0;
          this.finish(head, "OK");
          this.units.shift();
        } else if (head?.kind === "query") head.rows += rows ?? 0;
        return undefined;
      }
      case "I":
      case "s":
        if (head?.kind === "execute") {
          this.finish(head, "OK");
          this.units.shift();
        }
        return undefined;
      case "E": {
        const message = parseErrorFields(f.body).get("M") ?? "";
        if (head?.kind === "denied") {
          if (message.includes(head.nonce)) {
            this.units.shift();
            return head.error;
          }
          return undefined;
        }
        if (head?.kind === "execute") {
          this.finish(head, "UPSTREAM_ERROR", message);
          this.units.shift();
        } else if (head?.kind === "query") head.error ??= message;
        return undefined;
      }
      case "Z": {
        this.transactionStatus = f.body.toString("latin1", 0, 1);
        // Everything up to the unit this ReadyForQuery answers (a Sync or a query) is over.
        while (this.units.length > 0) {
          const unit = this.units.shift()!;
          if (unit.kind === "execute") this.finish(unit, "NOT_EXECUTED", "skipped by the server after an earlier error");
          if (unit.kind === "query") this.finish(unit, unit.error ? "UPSTREAM_ERROR" : "OK", unit.error);
          if (unit.kind === "sync" || unit.kind === "query" || unit.kind === "denied") break;
        }
        return undefined;
      }
      default:
        return undefined;
    }
  }

  private finish(unit: { id?: string; started: number; rows: number }, code: string, message?: string): void {
    if (!unit.id) return;
    const latencyMs = Math.round((performance.now() - unit.started) * 1000) / 1000;
    this.deps.journal.complete(unit.id, {
      code,
      outcome: code === "OK" ? { status: "ok", latencyMs } : { status: "error", error: code, ...(message ? { message } : {}), latencyMs },
      details: { rows: unit.rows },
    });
  }

  // ---- endings ----

  private onClientGone(): void {
    if (this.closed) return;
    // A client that vanished mid-statement must not leave the statement running.
    const running = this.units.some((u) => u.kind === "query" || u.kind === "execute");
    if (running && this.cancelKey) void this.deps.cancels.cancel(this.cancelKey.processId, this.cancelKey.secret);
    this.close("the client disconnected");
  }

  private onUpstreamGone(): void {
    if (this.closed) return;
    this.fatal("08006", "the database server closed the connection");
  }

  /** Sends a FATAL error and ends the connection. */
  fatal(code: string, message: string): void {
    if (this.closed) return;
    try {
      this.client.write(errorResponse({ severity: "FATAL", code, message }));
    } catch {
      // the client may already be gone
    }
    this.close(message);
  }

  close(reason = "closed"): void {
    if (this.closed) return;
    this.closed = true;
    for (const unit of this.units) if (unit.kind === "execute" || unit.kind === "query") this.finish(unit, "INTERRUPTED", reason);
    this.units.length = 0;
    if (this.cancelKey) this.deps.cancels.release(this.cancelKey.processId);
    this.client.end();
    setTimeout(() => this.client.destroy(), 1000).unref();
    const upstream = this.upstream?.socket;
    if (upstream && !upstream.destroyed) {
      // Terminate, after a possible cancel has had its moment to reach the server.
      setTimeout(() => upstream.end(frame("X")), 50).unref();
      setTimeout(() => upstream.destroy(), 2000).unref();
    }
    this.onClose?.();
  }

  onClose: (() => void) | undefined;

  get status(): string {
    return this.transactionStatus;
  }
}

const READ_CLASSES = new Set<StatementClass>(["select", "session", "transaction"]);

/** Changes nothing a durable audit record must precede: reads, session settings, transaction control. */
function isReadOnly(shape: Shape): boolean {
  return shape.functions.length === 0 && shape.statements.every((s) => READ_CLASSES.has(s));
}

function decisionKey(shape: Shape): string {
  return `${shape.statements.join(",")}|${shape.tables.join(",")}|${shape.functions.join(",")}`;
}

/** `-c mandate.delegation=TOKEN` in the startup `options` (what PGOPTIONS sets). */
export function delegationFromOptions(options: string): string | undefined {
  const match = /(?:^|\s)(?:-c\s*|--)mandate\.delegation=(\S+)/.exec(options);
  return match?.[1];
}
