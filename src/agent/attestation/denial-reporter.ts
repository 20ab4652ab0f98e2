import type { WorkloadDenial } from "../workload-api/server.js";

/** One refused caller as sent to the control plane; repeats of the same caller are counted. */
export interface DenialReport {
  rpc: string;
  at: number;
  pid: number;
  uid: number;
  gid: number;
  path: string | null;
  reasons: string[];
  count: number;
}

export interface DenialReporterOptions {
  /** Sends a batch to the control plane; rejects when it cannot. */
  send: (reports: DenialReport[]) => Promise<void>;
  log: (message: string) => void;
  /** Reports kept while the control plane is unreachable (default 1000); older ones are counted, then dropped. */
  maxPending?: number;
  batchSize?: number;
  flushDelayMs?: number;
}

/**
 * Every refused workload is evidence, so it goes into the control plane's audit log. The
 * denial itself never waits for that: it is logged here at once (a clear local record),
 * queued, and sent in batches. While the control plane is unreachable reports wait in a
 * bounded queue and are retried with backoff; a local process hammering the socket only
 * raises a counter on one pending report, so it can neither grow memory nor flood the log.
 */
export class DenialReporter {
  private readonly pending = new Map<string, DenialReport>();
  private dropped = 0;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private flushing: Promise<void> | undefined;
  private stopped = false;

  constructor(private readonly options: DenialReporterOptions) {}

  record(denial: WorkloadDenial): void {
    const path = typeof denial.facts.path === "string" ? denial.facts.path : null;
    const key = `${denial.rpc}|${denial.caller.pid}|${denial.caller.uid}|${denial.caller.gid}|${path}`;
    const existing = this.pending.get(key);
    if (existing) {
      existing.count++;
      return;
    }
    if (this.pending.size >= (this.options.maxPending ?? 1000)) {
      this.dropped++;
      return;
    }
    const report: DenialReport = { rpc: denial.rpc, at: denial.at, pid: denial.caller.pid, uid: denial.caller.uid, gid: denial.caller.gid, path, reasons: denial.reasons.slice(0, 8), count: 1 };
    this.pending.set(key, report);
    this.options.log(`workload attestation DENIED: ${denial.rpc} from pid ${report.pid} uid ${report.uid} gid ${report.gid} exe ${path ?? "(unknown)"}: ${report.reasons.join("; ") || "no identity matches"}`);
    this.schedule(this.options.flushDelayMs ?? 200);
  }

  /** Pending reports not yet accepted by the control plane. */
  pendingCount(): number {
    return this.pending.size;
  }

  private schedule(delayMs: number): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  /** Sends what is pending now; resolves when the attempt is over (tests, shutdown). */
  flush(): Promise<void> {
    this.flushing ??= this.flushOnce().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    while (this.pending.size > 0) {
      const entries = [...this.pending.entries()].slice(0, this.options.batchSize ?? 100);
      const batch = entries.map(([, report]) => ({ ...report, reasons: [...report.reasons] }));
      if (this.dropped > 0) batch[batch.length - 1]!.reasons.push(`${this.dropped} more denial report(s) were dropped while the control plane was unreachable`);
      try {
        await this.options.send(batch);
      } catch (error) {
        this.failures++;
        this.options.log(`could not report ${this.pending.size} workload denial(s) to the control plane (${(error as Error).message}); they stay in this log and will be retried`);
        this.schedule(Math.min(60_000, 1000 * 2 ** this.failures));
        return;
      }
      this.failures = 0;
      this.dropped = 0;
      entries.forEach(([key, report], i) => {
        // Counts that grew while the batch was in flight are reported in the next one.
        const sentCount = batch[i]!.count;
        if (report.count === sentCount) this.pending.delete(key);
        else report.count -= sentCount;
      });
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }
}
