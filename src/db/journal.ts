import { closeSync, fdatasync, fdatasyncSync, openSync, writeSync } from "node:fs";
import { mkdir, readdir, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import type { AuditEventInput, AuditLog } from "../audit/index.js";

/**
 * The database proxy's write-ahead audit journal (docs/decisions/0005). A statement is
 * forwarded only once its intent is on disk here: intents from every connection are
 * appended together and made durable by one fdatasync per batch (group commit), so the
 * fsync rate, not the statement rate, bounds the disk. Outcomes (rows, duration, error)
 * follow without waiting. Completed statements are folded, off the hot path and in
 * batches, into the hash-chained audit log as one `db.query` event each; a segment is
 * deleted once everything in it is folded. After a crash the journal is folded on the next
 * start; an intent without an outcome is recorded as such (the statement may have run).
 */
export interface JournalOutcome {
  code: string;
  outcome: AuditEventInput["outcome"];
  details?: Record<string, unknown>;
}

interface Pending {
  event: AuditEventInput;
  segment: number;
}

const SEGMENT_BYTES = 8 * 1024 * 1024;
const SEGMENT_PATTERN = /^journal-(\d+)\.log$/;

export class DbAuditJournal {
  private fd: number | undefined;
  private dirty = false;
  private syncing = false;
  private syncTimer: NodeJS.Timeout | undefined;
  private syncWaiters: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  private deferred: string[] = [];
  private writeWaiters: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  private writeScheduled = false;
  private segment = 0;
  private segmentBytes = 0;
  private readonly unfolded = new Map<number, number>();
  private readonly inFlight = new Map<string, Pending>();
  private foldQueue: { event: AuditEventInput; segment: number }[] = [];
  private folding: Promise<void> | undefined;
  private foldScheduled = false;
  private closed = false;
  /** statements made durable in the journal and folded into the audit log (metrics, tests) */
  readonly stats = { intents: 0, durableIntents: 0, batches: 0, folded: 0 };

  private constructor(
    private readonly dir: string,
    private readonly audit: AuditLog,
    private readonly onError: (error: unknown) => void,
    private readonly backgroundSyncMs: number,
    private readonly foldLingerMs: number,
  ) {}

  static async open(dir: string, audit: AuditLog, onError: (error: unknown) => void, options: { backgroundSyncMs?: number; foldLingerMs?: number } = {}): Promise<DbAuditJournal> {
    const journal = new DbAuditJournal(dir, audit, onError, options.backgroundSyncMs ?? 5, options.foldLingerMs ?? 200);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await journal.recover();
    journal.fd = openSync(join(dir, `journal-${journal.segment}.log`), "a", 0o600);
    return journal;
  }

  /**
   * Resolves once the intent is written; only then may the statement go upstream.
   * `durable`: once an fdatasync covers it too (statements that change anything);
   * otherwise once it is in the journal file (a crash of the proxy cannot lose it), every
   * connection's intents of one event-loop turn sharing one write(2); it reaches the disk
   * with the next group sync, within `backgroundSyncMs`.
   */
  intent(id: string, event: AuditEventInput, durable = true): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the audit journal is closed"));
    this.deferred.push(`${JSON.stringify({ t: "i", id, e: event })}\n`);
    this.inFlight.set(id, { event, segment: this.segment });
    this.count(this.segment, 1);
    this.stats.intents++;
    if (!durable) {
      // Every connection's intents of this event-loop turn share one write(2).
      return new Promise((resolve, reject) => {
        this.writeWaiters.push({ resolve, reject });
        if (!this.writeScheduled) {
          this.writeScheduled = true;
          setImmediate(() => this.flushWrites());
        }
      });
    }
    this.stats.durableIntents++;
    return new Promise((resolve, reject) => {
      this.syncWaiters.push({ resolve, reject });
      this.kickSync();
    });
  }

  /** Records the outcome and queues the completed statement for the audit log. */
  complete(id: string, result: JournalOutcome): void {
    const pending = this.inFlight.get(id);
    if (!pending) return;
    this.inFlight.delete(id);
    const event = merge(pending.event, result);
    this.appendQuietly({ t: "o", id, r: result });
    this.queueFold(event, pending.segment);
  }

  /** A record with nothing to wait for (a refused statement, a connection): the attempt is evidence. */
  record(event: AuditEventInput): void {
    this.count(this.segment, 1);
    this.appendQuietly({ t: "r", e: event });
    this.queueFold(event, this.segment);
  }

  private count(segment: number, delta: number): void {
    this.unfolded.set(segment, (this.unfolded.get(segment) ?? 0) + delta);
  }

  private append(record: unknown): void {
    if (this.fd === undefined) throw new Error("the audit journal is closed");
    const line = `${JSON.stringify(record)}\n`;
    const bytes = Buffer.from(this.deferred.length ? this.deferred.join("") + line : line);
    this.deferred = [];
    let written = 0;
    while (written < bytes.length) written += writeSync(this.fd, bytes, written);
    this.segmentBytes += bytes.length;
    this.dirty = true;
  }

  /** Outcomes and records need no write of their own: they go out with the next intent's write or sync. */
  private appendQuietly(record: unknown): void {
    this.deferred.push(`${JSON.stringify(record)}\n`);
    this.scheduleSync();
  }

  private writeDeferred(): unknown {
    if (this.deferred.length === 0) return undefined;
    if (this.fd === undefined) return new Error("the audit journal is closed");
    const bytes = Buffer.from(this.deferred.join(""));
    this.deferred = [];
    try {
      let written = 0;
      while (written < bytes.length) written += writeSync(this.fd, bytes, written);
      this.segmentBytes += bytes.length;
      this.dirty = true;
      return undefined;
    } catch (error) {
      this.onError(error);
      return error;
    }
  }

  private flushWrites(): void {
    this.writeScheduled = false;
    const waiters = this.writeWaiters;
    this.writeWaiters = [];
    const error = this.writeDeferred();
    for (const w of waiters) {
      if (error) w.reject(error);
      else w.resolve();
    }
    this.scheduleSync();
  }

  private scheduleSync(): void {
    if (this.syncTimer || this.closed) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = undefined;
      this.kickSync();
    }, this.backgroundSyncMs);
    this.syncTimer.unref();
  }

  /** One fdatasync for every record written before it started; callers who came during it wait for the next. */
  private kickSync(): void {
    if (this.syncing || this.fd === undefined) return;
    const writeError = this.writeDeferred();
    if (writeError) {
      for (const w of this.syncWaiters.splice(0)) w.reject(writeError);
      return;
    }
    if (!this.dirty && this.syncWaiters.length === 0) return;
    this.syncing = true;
    this.dirty = false;
    const waiters = this.syncWaiters;
    this.syncWaiters = [];
    fdatasync(this.fd, (error) => {
      this.syncing = false;
      this.stats.batches++;
      for (const w of waiters) {
        if (error) w.reject(error);
        else w.resolve();
      }
      if (this.segmentBytes > SEGMENT_BYTES) this.rotate();
      if (this.syncWaiters.length > 0) this.kickSync();
      else if (this.dirty) this.scheduleSync();
    });
  }

  private rotate(): void {
    const old = this.segment;
    if (this.fd === undefined) return;
    this.writeDeferred();
    fdatasyncSync(this.fd);
    closeSync(this.fd);
    this.segment++;
    this.segmentBytes = 0;
    this.fd = openSync(join(this.dir, `journal-${this.segment}.log`), "a", 0o600);
    void this.maybeDelete(old);
  }

  private async maybeDelete(segment: number): Promise<void> {
    if (segment === this.segment || (this.unfolded.get(segment) ?? 0) > 0) return;
    this.unfolded.delete(segment);
    await unlink(join(this.dir, `journal-${segment}.log`)).catch(() => undefined);
  }

  private queueFold(event: AuditEventInput, segment: number): void {
    this.foldQueue.push({ event, segment });
    if (!this.foldScheduled) {
      this.foldScheduled = true;
      // Lingers so one event can carry a connection's statements of the last few ms.
      setTimeout(() => void this.fold(), this.foldLingerMs).unref();
    }
  }

  /** Appends completed statements to the audit log; concurrent appends share one commit. */
  private async fold(): Promise<void> {
    this.foldScheduled = false;
    while (this.folding) await this.folding;
    const batch = this.foldQueue.splice(0, 2000);
    if (batch.length === 0) return;
    this.folding = (async () => {
      const results = await Promise.allSettled(foldEvents(batch.map((item) => item.event)).map((event) => this.audit.append(event)));
      const failed = results.filter((r) => r.status === "rejected");
      if (failed.length > 0) {
        // Kept in the journal (not counted as folded): the next start folds them again.
        this.onError((failed[0] as PromiseRejectedResult).reason);
        return;
      }
      this.stats.folded += batch.length;
      const touched = new Set<number>();
      for (const item of batch) {
        this.count(item.segment, -1);
        touched.add(item.segment);
      }
      for (const segment of touched) await this.maybeDelete(segment);
    })();
    try {
      await this.folding;
    } finally {
      this.folding = undefined;
    }
    if (this.foldQueue.length > 0 && !this.foldScheduled) {
      this.foldScheduled = true;
      // Lingers so one event can carry a connection's statements of the last few ms.
      setTimeout(() => void this.fold(), this.foldLingerMs).unref();
    }
  }

  /** Waits until every completed statement so far is in the audit log (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.foldQueue.length > 0 || this.folding || this.foldScheduled) {
      if (this.folding) await this.folding;
      else await new Promise((r) => setImmediate(r));
    }
  }

  /** Intents still open (statements running, or connections that vanished) are closed as unfinished. */
  async close(): Promise<void> {
    for (const id of [...this.inFlight.keys()]) this.complete(id, unfinished("the proxy stopped before the statement finished"));
    await this.flush();
    this.closed = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    while (this.syncing) await new Promise((r) => setTimeout(r, 1));
    if (this.writeScheduled) this.flushWrites();
    this.writeDeferred();
    if (this.fd !== undefined) {
      fdatasyncSync(this.fd);
      closeSync(this.fd);
    }
    this.fd = undefined;
    if ((this.unfolded.get(this.segment) ?? 0) === 0) await unlink(join(this.dir, `journal-${this.segment}.log`)).catch(() => undefined);
  }

  /** Folds what a previous process left: completed statements as they were, open intents as unfinished. */
  private async recover(): Promise<void> {
    const segments = (await readdir(this.dir))
      .map((f) => SEGMENT_PATTERN.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    const intents = new Map<string, AuditEventInput>();
    const events: AuditEventInput[] = [];
    for (const segment of segments) {
      const text = await readFile(join(this.dir, `journal-${segment}.log`), "utf8");
      for (const line of text.split("\n")) {
        if (!line) continue;
        let record: { t?: string; id?: string; e?: AuditEventInput; r?: JournalOutcome };
        try {
          record = JSON.parse(line) as typeof record;
        } catch {
          continue; // a torn last line: its statement was never acknowledged, so never forwarded
        }
        if (record.t === "i" && record.id && record.e) intents.set(record.id, record.e);
        else if (record.t === "o" && record.id && record.r) {
          const intent = intents.get(record.id);
          if (intent) {
            intents.delete(record.id);
            events.push(merge(intent, record.r));
          }
        } else if (record.t === "r" && record.e) events.push(record.e);
      }
    }
    for (const intent of intents.values()) events.push(merge(intent, unfinished("the proxy stopped before the outcome was recorded; the statement may have run")));
    for (const event of events) await this.audit.append({ ...event, details: { ...event.details, recovered: true } });
    for (const segment of segments) await unlink(join(this.dir, `journal-${segment}.log`));
    this.segment = (segments.at(-1) ?? -1) + 1;
  }
}

function unfinished(message: string): JournalOutcome {
  return { code: "UNFINISHED", outcome: { status: "error", error: "UNFINISHED", message } };
}

function merge(intent: AuditEventInput, result: JournalOutcome): AuditEventInput {
  return { ...intent, code: result.code, outcome: result.outcome, details: { ...intent.details, ...result.details } };
}

/**
 * Statements that ran, from one connection, folded together into one `db.query.batch`
 * event (each statement's record in `details.queries`, in order): the hash chain covers
 * every statement, and the audit log's per-event cost is paid per batch, not per
 * statement. Refusals and connection records stay events of their own.
 */
export function foldEvents(events: AuditEventInput[]): AuditEventInput[] {
  const out: AuditEventInput[] = [];
  const bySession = new Map<string, AuditEventInput[]>();
  for (const event of events) {
    const session = event.correlation?.session;
    if (event.type !== "db.query" || event.decision?.allow === false || !session) {
      out.push(event);
      continue;
    }
    let group = bySession.get(session);
    if (!group) bySession.set(session, (group = []));
    group.push(event);
  }
  for (const group of bySession.values()) {
    if (group.length === 1) {
      out.push(group[0]!);
      continue;
    }
    const first = group[0]!;
    const failed = group.filter((e) => e.outcome.status === "error").length;
    out.push({
      type: "db.query.batch",
      code: failed ? "PARTIAL" : "OK",
      actor: first.actor,
      ...(first.delegation ? { delegation: first.delegation } : {}),
      ...(first.correlation ? { correlation: first.correlation } : {}),
      ...(first.target ? { target: first.target } : {}),
      ...(first.decision ? { decision: first.decision } : {}),
      outcome: { status: failed ? "error" : "ok", ...(failed ? { message: `${failed} of ${group.length} statements failed` } : {}) },
      details: compactQueries(group),
    });
  }
  return out;
}

/**
 * A batch's statements, each with its text, rows, duration and result; what they are
 * (classes, tables, functions, protocol, the decision's reasons) is listed once per
 * distinct shape in `shapes` and referenced by index.
 */
function compactQueries(group: AuditEventInput[]): Record<string, unknown> {
  const shapes: Record<string, unknown>[] = [];
  const index = new Map<string, number>();
  const queries = group.map((e) => {
    const { statement, rows, statements, tables, functions, protocol, statementCount } = (e.details ?? {}) as Record<string, unknown>;
    const shape = { statements, tables, functions, protocol, statementCount, reasons: e.decision?.reasons ?? [] };
    const key = JSON.stringify(shape);
    let i = index.get(key);
    if (i === undefined) {
      i = shapes.push(shape) - 1;
      index.set(key, i);
    }
    return { statement, shape: i, rows, code: e.code, latencyMs: e.outcome.latencyMs, ...(e.outcome.status === "error" ? { error: e.outcome.message ?? e.outcome.error } : {}) };
  });
  return { count: group.length, shapes, queries };
}
