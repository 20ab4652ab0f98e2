import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { MandateError } from "../errors/index.js";
import type { Store } from "../store/index.js";

/** One committed event as sinks receive it: its place in the chain and its canonical JSON. */
export interface ExportedEvent {
  seq: number;
  body: string;
}

export interface AuditSink {
  /** Stable name: the export cursor is stored under it. */
  readonly name: string;
  /** Must be idempotent for the same batch: delivery is at least once. */
  deliver(batch: ExportedEvent[]): Promise<void>;
}

export interface ExporterOptions {
  batchSize?: number;
  pollIntervalMs?: number;
  maxBackoffMs?: number;
  onError?: (sink: string, error: unknown, attempt: number) => void;
}

/**
 * Ships the durable log to external sinks. Sinks read what is already committed and
 * keep their own cursor, so a slow or dead sink can only fall behind: it never blocks
 * an append and never loses an event (it resumes from its cursor, at least once).
 */
export class AuditExporter {
  private stopped = false;
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly store: Store,
    private readonly sink: AuditSink,
    private readonly options: ExporterOptions = {},
  ) {}

  private get cursorKey(): string {
    return `audit_export_cursor:${this.sink.name}`;
  }

  async cursor(): Promise<number> {
    return Number((await this.store.getMeta(this.cursorKey)) ?? "0");
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
  }

  /** Delivers everything committed so far (tests, and shutdown). */
  async drain(): Promise<void> {
    while ((await this.exportOnce()) > 0);
  }

  /** One batch: returns how many events were delivered. */
  async exportOnce(): Promise<number> {
    const after = await this.cursor();
    const rows = await this.store.db
      .selectFrom("audit_events")
      .select(["chain_seq", "body"])
      .where("chain_seq", ">", after)
      .orderBy("chain_seq")
      .limit(this.options.batchSize ?? 500)
      .execute();
    if (rows.length === 0) return 0;
    const batch = rows.map((r) => ({ seq: Number(r.chain_seq), body: r.body }));
    await this.sink.deliver(batch);
    const last = batch[batch.length - 1]!.seq;
    await this.store.transaction(async (tx) => {
      await tx
        .insertInto("meta")
        .values({ key: this.cursorKey, value: String(last) })
        .onConflict((oc) => oc.column("key").doUpdateSet({ value: String(last) }))
        .execute();
    });
    return batch.length;
  }

  private async loop(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      let delay = this.options.pollIntervalMs ?? 500;
      try {
        const delivered = await this.exportOnce();
        attempt = 0;
        if (delivered > 0) delay = 0;
      } catch (error) {
        attempt++;
        this.options.onError?.(this.sink.name, error, attempt);
        const ceiling = Math.min(this.options.maxBackoffMs ?? 60_000, 250 * 2 ** Math.min(attempt, 16));
        delay = ceiling / 2 + Math.random() * (ceiling / 2);
      }
      if (delay > 0 && !this.stopped) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, delay);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      }
    }
  }
}

/**
 * JSON Lines files: `audit.jsonl` grows until `maxBytes`, then is renamed with the
 * range of sequence numbers it holds; the oldest rotated files beyond `maxFiles` go.
 * Each batch is fsynced before the cursor moves.
 */
export class JsonlFileSink implements AuditSink {
  readonly name: string;

  constructor(
    private readonly dir: string,
    private readonly limits: { maxBytes?: number; maxFiles?: number } = {},
  ) {
    this.name = `jsonl:${dir}`;
  }

  get currentPath(): string {
    return join(this.dir, "audit.jsonl");
  }

  async deliver(batch: ExportedEvent[]): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const size = await stat(this.currentPath).then((s) => s.size, () => 0);
    if (size > 0 && size >= (this.limits.maxBytes ?? 100 * 1024 * 1024)) await this.rotate();
    const handle = await open(this.currentPath, "a", 0o600);
    try {
      await handle.writeFile(batch.map((e) => `${e.body}\n`).join(""));
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  private async rotate(): Promise<void> {
    const stamp = new Date().toISOString().replace(/[:.]/g, "-");
    await rename(this.currentPath, join(this.dir, `audit-${stamp}-${randomBytes(3).toString("hex")}.jsonl`));
    const rotated = (await readdir(this.dir)).filter((f) => /^audit-.+\.jsonl$/.test(f)).sort();
    const excess = rotated.length - (this.limits.maxFiles ?? 10);
    for (const file of rotated.slice(0, Math.max(0, excess))) await rm(join(this.dir, file), { force: true });
  }
}

/**
 * POSTs batches as `{"events": [...]}` with an `Idempotency-Key` naming the batch's
 * sequence range, so a SIEM can drop the duplicates that at-least-once delivery implies.
 */
export class WebhookSink implements AuditSink {
  readonly name: string;

  constructor(
    private readonly url: string,
    private readonly options: { headers?: Record<string, string>; timeoutMs?: number } = {},
  ) {
    const parsed = new URL(url);
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") throw new MandateError("CONFIG_INVALID", `audit webhook must be http(s): ${parsed.protocol}`);
    this.name = `webhook:${parsed.origin}${parsed.pathname}`;
  }

  async deliver(batch: ExportedEvent[]): Promise<void> {
    const body = `{"events":[${batch.map((e) => e.body).join(",")}]}`;
    const response = await fetch(this.url, {
      method: "POST",
      headers: { "content-type": "application/json", "idempotency-key": `mandate-audit-${batch[0]!.seq}-${batch[batch.length - 1]!.seq}`, ...this.options.headers },
      body,
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 10_000),
    });
    await response.arrayBuffer().catch(() => undefined);
    if (!response.ok) throw new MandateError("CONNECTION_FAILED", `audit webhook answered HTTP ${response.status}`);
  }
}
