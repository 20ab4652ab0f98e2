import { sql } from "kysely";
import type { StoreTx } from "./store.js";

/**
 * Increments a revision counter in `meta` inside the caller's transaction. Registries that
 * hold a view in memory poll the counter and reload when it moves, so a change written by
 * any control plane reaches all of them within one poll interval.
 */
export async function bumpRevision(tx: StoreTx, key: string): Promise<void> {
  const updated = await tx
    .updateTable("meta")
    .set({ value: sql<string>`cast(cast(value as bigint) + 1 as text)` })
    .where("key", "=", key)
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) === 0) await tx.insertInto("meta").values({ key, value: "1" }).execute();
}

/**
 * Keeps an in-memory view in step with one revision counter: `load` runs at start, then
 * whenever a poll sees the counter move (or a caller forces it). Refreshes never overlap;
 * a forced refresh requested during one waits for it and reads again. Callers that answer
 * from the view ask `staleness()` first and fail closed when it reports one.
 */
export class RevisionPoller {
  private revision: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private lastRefresh = 0;
  private refreshError: unknown;
  private refreshing: Promise<void> | undefined;
  private intervalMs = 200;

  constructor(
    private readonly store: { getMeta(key: string): Promise<string | undefined> },
    private readonly key: string,
    private readonly load: (revision: string) => Promise<void>,
    private readonly now: () => number = Date.now,
  ) {}

  get pollIntervalMs(): number {
    return this.intervalMs;
  }

  async start(pollIntervalMs = 200): Promise<void> {
    this.intervalMs = pollIntervalMs;
    await this.refresh(true);
    // A failed poll is recorded by refresh() and reported through staleness().
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), pollIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** While polling: how long the view has gone without a successful refresh, when that exceeds `maxAgeMs`. */
  staleness(maxAgeMs: number, at: number = this.now()): { ageMs: number; error: unknown } | undefined {
    if (!this.timer) return undefined;
    const ageMs = at - this.lastRefresh;
    return ageMs > maxAgeMs ? { ageMs, error: this.refreshError } : undefined;
  }

  refresh(force = false): Promise<void> {
    const run = async () => {
      try {
        const revision = (await this.store.getMeta(this.key)) ?? "0";
        if (force || revision !== this.revision) {
          await this.load(revision);
          this.revision = revision;
        }
      } catch (error) {
        this.refreshError = error;
        throw error;
      }
      this.lastRefresh = this.now();
      this.refreshError = undefined;
    };
    const next = (this.refreshing ?? Promise.resolve()).catch(() => undefined).then(run);
    this.refreshing = next;
    return next;
  }
}
