import { createHash } from "node:crypto";
import { sql } from "kysely";
import { ulid } from "../audit/index.js";
import type { LlmTranscriptTable, LlmUsageTable, Store } from "../store/index.js";
import type { BudgetScope, LlmConfig } from "./config.js";
import { detectPii, detectSecrets, redactFindings } from "./guardrails/index.js";
import type { Verdict } from "./guardrails/index.js";
import type { Usage } from "./types.js";

export interface UsageRecord {
  time: number;
  agent: string | undefined;
  team: string | undefined;
  delegationId: string | undefined;
  taskId: string | undefined;
  model: string;
  provider: string | undefined;
  upstreamModel: string | undefined;
  endpoint: string;
  status: string;
  usage: Usage;
  costNano: number;
  latencyMs: number;
  eventId: string | undefined;
}

export interface TranscriptRecord {
  time: number;
  eventId: string;
  agent: string | undefined;
  delegationId: string | undefined;
  taskId: string | undefined;
  model: string;
  prompt: string;
  response: string;
  guardrails: Verdict[];
}

export interface StoredTranscript {
  id: string;
  prompt: string;
  response: string;
  truncated: boolean;
  sha256: string;
}

/** Text as stored: credentials and personal data always removed, whatever the guardrails' actions, then cut to size. */
export function storableText(text: string, maxChars: number): { text: string; truncated: boolean } {
  const clean = redactFindings(text, [...detectSecrets(text), ...detectPii(text)]);
  if (clean.length <= maxChars) return { text: clean, truncated: false };
  return { text: `${clean.slice(0, maxChars)}[TRUNCATED:${clean.length - maxChars} chars]`, truncated: true };
}

/**
 * The usage ledger (`llm_usage`, what `mandate usage` and budget seeds add up) and the
 * transcripts `mandate audit trace` shows (`llm_transcripts`, pruned after the
 * configured retention). Both are written off the request path, batched with the audit
 * log's group commit.
 */
export class LlmRecorder {
  private pruneTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly tracking: LlmConfig["tracking"],
    private readonly onError: (error: unknown) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  private usageQueue: LlmUsageTable[] = [];
  private transcriptQueue: LlmTranscriptTable[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  /**
   * Rows are queued and written together every few milliseconds, one multi-row insert
   * per table: they are bookkeeping (the audit event is the record), and one statement
   * for many requests keeps the store's work off the request path.
   */
  private schedule(): void {
    if (this.usageQueue.length + this.transcriptQueue.length >= 500) {
      void this.writeQueued();
      return;
    }
    this.flushTimer ??= setTimeout(() => void this.writeQueued(), 20);
  }

  private writeQueued(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const usage = this.usageQueue.splice(0);
    const transcripts = this.transcriptQueue.splice(0);
    if (usage.length === 0 && transcripts.length === 0) return this.flushing;
    // Deferred: the rows ride in the next request's intent commit instead of adding a sync of their own.
    const write = this.store.writeDurablyDeferred(async (tx) => {
      // SQLite caps bound parameters per statement; 19 columns × 40 rows stays well under it.
      for (let i = 0; i < usage.length; i += 40) await tx.insertInto("llm_usage").values(usage.slice(i, i + 40)).execute();
      for (let i = 0; i < transcripts.length; i += 40) await tx.insertInto("llm_transcripts").values(transcripts.slice(i, i + 40)).execute();
    });
    this.flushing = Promise.all([this.flushing, write.catch(this.onError)]).then(() => undefined);
    return this.flushing;
  }

  /** Resolves once every row recorded so far has been written (tests, reports, shutdown). */
  async flush(): Promise<void> {
    const written = this.writeQueued();
    await this.store.drainWrites();
    await written;
    await this.flushing;
  }

  recordUsage(r: UsageRecord): void {
    this.usageQueue.push({
      id: ulid(r.time),
      time: r.time,
      agent: r.agent ?? null,
      team: r.team ?? null,
      delegation_id: r.delegationId ?? null,
      task_id: r.taskId ?? null,
      model: r.model,
      provider: r.provider ?? null,
      upstream_model: r.upstreamModel ?? null,
      endpoint: r.endpoint,
      status: r.status,
      input_tokens: r.usage.inputTokens,
      output_tokens: r.usage.outputTokens,
      cached_tokens: r.usage.cachedInputTokens,
      reasoning_tokens: r.usage.reasoningTokens,
      cost_nano_usd: r.costNano,
      estimated: r.usage.estimated ? 1 : 0,
      latency_ms: Math.round(r.latencyMs),
      event_id: r.eventId ?? null,
    });
    this.schedule();
  }

  /** Stores a transcript and returns its id and digest (for the audit event), or undefined when tracking is off. */
  recordTranscript(r: TranscriptRecord): StoredTranscript | undefined {
    if (!this.tracking.prompts) return undefined;
    const prompt = storableText(r.prompt, this.tracking.maxChars);
    const response = storableText(r.response, this.tracking.maxChars);
    const id = ulid(r.time);
    const sha256 = createHash("sha256").update(prompt.text).update("\u0000").update(response.text).digest("hex");
    const truncated = prompt.truncated || response.truncated;
    this.transcriptQueue.push({ id, time: r.time, event_id: r.eventId, agent: r.agent ?? null, delegation_id: r.delegationId ?? null, task_id: r.taskId ?? null, model: r.model, prompt: prompt.text, response: response.text, truncated: truncated ? 1 : 0, guardrails: JSON.stringify(r.guardrails) });
    this.schedule();
    return { id, prompt: prompt.text, response: response.text, truncated, sha256 };
  }

  async spendSince(scope: BudgetScope, name: string, since: number): Promise<number> {
    await this.flush();
    const column = scope === "delegation" ? "delegation_id" : scope;
    const row = await this.store.db
      .selectFrom("llm_usage")
      .select((eb) => eb.fn.sum<number | string | null>("cost_nano_usd").as("total"))
      .where(column, "=", name)
      .where("time", ">=", since)
      .executeTakeFirst();
    return Number(row?.total ?? 0);
  }

  async transcriptsFor(eventIds: string[]): Promise<Map<string, { prompt: string; response: string; truncated: boolean; model: string }>> {
    const out = new Map<string, { prompt: string; response: string; truncated: boolean; model: string }>();
    for (let i = 0; i < eventIds.length; i += 500) {
      const rows = await this.store.db.selectFrom("llm_transcripts").select(["event_id", "prompt", "response", "truncated", "model"]).where("event_id", "in", eventIds.slice(i, i + 500)).execute();
      for (const r of rows) out.set(r.event_id, { prompt: r.prompt, response: r.response, truncated: r.truncated === 1, model: r.model });
    }
    return out;
  }

  async prune(): Promise<number> {
    const cutoff = this.now() - this.tracking.retentionDays * 86_400_000;
    const result = await this.store.db.deleteFrom("llm_transcripts").where("time", "<", cutoff).executeTakeFirst();
    return Number(result.numDeletedRows ?? 0);
  }

  startRetention(intervalMs = 3600_000): void {
    this.pruneTimer = setInterval(() => void this.prune().catch(this.onError), intervalMs);
    this.pruneTimer.unref();
  }

  stop(): void {
    if (this.pruneTimer) clearInterval(this.pruneTimer);
  }

  /** `mandate usage`: requests, tokens and cost grouped by one dimension since a time. */
  async report(by: "team" | "agent" | "model" | "delegation", since: number): Promise<UsageRow[]> {
    const column = by === "delegation" ? "delegation_id" : by;
    const rows = await this.store.db
      .selectFrom("llm_usage")
      .select([
        sql<string | null>`${sql.ref(column)}`.as("key"),
        (eb) => eb.fn.countAll<number | string>().as("requests"),
        (eb) => eb.fn.sum<number | string>("input_tokens").as("input_tokens"),
        (eb) => eb.fn.sum<number | string>("output_tokens").as("output_tokens"),
        (eb) => eb.fn.sum<number | string>("cached_tokens").as("cached_tokens"),
        (eb) => eb.fn.sum<number | string>("reasoning_tokens").as("reasoning_tokens"),
        (eb) => eb.fn.sum<number | string>("cost_nano_usd").as("cost"),
        (eb) => eb.fn.sum<number | string>(sql`case when status = 'ok' then 0 else 1 end`).as("errors"),
      ])
      .where("time", ">=", since)
      .groupBy(column)
      .execute();
    return rows
      .map((r) => ({
        key: r.key ?? "-",
        requests: Number(r.requests),
        errors: Number(r.errors),
        inputTokens: Number(r.input_tokens ?? 0),
        outputTokens: Number(r.output_tokens ?? 0),
        cachedTokens: Number(r.cached_tokens ?? 0),
        reasoningTokens: Number(r.reasoning_tokens ?? 0),
        costUsd: Math.round(Number(r.cost ?? 0) / 1000) / 1e6,
      }))
      .sort((a, b) => b.costUsd - a.costUsd || b.requests - a.requests);
  }
}

export interface UsageRow {
  key: string;
  requests: number;
  errors: number;
  inputTokens: number;
  outputTokens: number;
  cachedTokens: number;
  reasoningTokens: number;
  costUsd: number;
}
