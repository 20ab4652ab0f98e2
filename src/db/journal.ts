import { mkdir, open, readdir, readFile, unlink, type FileHandle } from "node:fs/promises";
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
  private handle: FileHandle | undefined;
  private segment = 0;
  private segmentBytes = 0;
  private readonly unfolded = new Map<number, number>();
  private readonly inFlight = new Map<string, Pending>();
  private writeQueue: { bytes: Buffer; resolve: () => void; reject: (error: unknown) => void }[] = [];
  private writing = false;
  private foldQueue: { event: AuditEventInput; segment: number }[] = [];
  private folding: Promise<void> | undefined;
  private foldScheduled = false;
  private closed = false;
  /** statements made durable in the journal and folded into the audit log (metrics, tests) */
  readonly stats = { intents: 0, batches: 0, folded: 0 };

  private constructor(
    private readonly dir: string,
    private readonly audit: AuditLog,
    private readonly onError: (error: unknown) => void,
  ) {}

  static async open(dir: string, audit: AuditLog, onError: (error: unknown) => void): Promise<DbAuditJournal> {
    const journal = new DbAuditJournal(dir, audit, onError);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await journal.recover();
    journal.handle = await open(join(dir, `journal-${journal.segment}.log`), "a", 0o600);
    return journal;
  }

  /** Resolves once the intent is durable; the caller acts only after that. */
  intent(id: string, event: AuditEventInput): Promise<void> {
    if (this.closed) return Promise.reject(new Error("the audit journal is closed"));
    this.inFlight.set(id, { event, segment: this.segment });
    this.count(this.segment, 1);
    this.stats.intents++;
    return this.write({ t: "i", id, e: event });
  }

  /** Records the outcome and queues the completed statement for the audit log. */
  complete(id: string, result: JournalOutcome): void {
    const pending = this.inFlight.get(id);
    if (!pending) return;
    this.inFlight.delete(id);
    const event = merge(pending.event, result);
    void this.write({ t: "o", id, r: result }).catch(this.onError);
    this.queueFold(event, pending.segment);
  }

  /** A record with nothing to wait for (a refused statement, a connection): the attempt is evidence. */
  record(event: AuditEventInput): void {
    this.count(this.segment, 1);
    void this.write({ t: "r", e: event }).catch(this.onError);
    this.queueFold(event, this.segment);
  }

  private count(segment: number, delta: number): void {
    this.unfolded.set(segment, (this.unfolded.get(segment) ?? 0) + delta);
  }

  private write(record: unknown): Promise<void> {
    const bytes = Buffer.from(`${JSON.stringify(record)}\n`);
    return new Promise((resolve, reject) => {
      this.writeQueue.push({ bytes, resolve, reject });
      if (!this.writing) void this.drainWrites();
    });
  }

  /** One write and one fdatasync for everything queued while the previous batch was syncing. */
  private async drainWrites(): Promise<void> {
    this.writing = true;
    try {
      while (this.writeQueue.length > 0) {
        const batch = this.writeQueue;
        this.writeQueue = [];
        try {
          const bytes = Buffer.concat(batch.map((b) => b.bytes));
          await this.handle!.write(bytes);
          await this.handle!.datasync();
          this.segmentBytes += bytes.length;
          this.stats.batches++;
          for (const item of batch) item.resolve();
        } catch (error) {
          for (const item of batch) item.reject(error);
        }
        if (this.segmentBytes > SEGMENT_BYTES) await this.rotate();
      }
    } finally {
      this.writing = false;
    }
  }

  private async rotate(): Promise<void> {
    const old = this.segment;
    await this.handle!.close();
    this.segment++;
    this.segmentBytes = 0;
    this.handle = await open(join(this.dir, `journal-${this.segment}.log`), "a", 0o600);
    await this.maybeDelete(old);
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
      setImmediate(() => void this.fold());
    }
  }

  /** Appends completed statements to the audit log; concurrent appends share one commit. */
  private async fold(): Promise<void> {
    this.foldScheduled = false;
    while (this.folding) await this.folding;
    const batch = this.foldQueue.splice(0, 2000);
    if (batch.length === 0) return;
    this.folding = (async () => {
      const results = await Promise.allSettled(batch.map((item) => this.audit.append(item.event)));
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
      setImmediate(() => void this.fold());
    }
  }

  /** Waits until every completed statement so far is in the audit log (tests, shutdown). */
  async flush(): Promise<void> {
    while (this.writing || this.foldQueue.length > 0 || this.folding || this.foldScheduled) {
      if (this.folding) await this.folding;
      else await new Promise((r) => setImmediate(r));
    }
  }

  /** Intents still open (statements running, or connections that vanished) are closed as unfinished. */
  async close(): Promise<void> {
    for (const id of [...this.inFlight.keys()]) this.complete(id, unfinished("the proxy stopped before the statement finished"));
    await this.flush();
    this.closed = true;
    await this.handle?.close();
    this.handle = undefined;
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
