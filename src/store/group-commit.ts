/**
 * Collects writes issued in the same event-loop turn and commits them in one
 * transaction: one fsync acknowledges many callers, so durable writes scale with
 * concurrency instead of the disk's fsync rate. A caller's promise resolves only
 * after its write is committed — and, when a `sync` is given, after a sync that began
 * after that commit has completed. If the batch fails, every caller in it sees the error.
 *
 * With `sync`, the transaction commits without waiting for the disk and the sync runs
 * off the event loop, beside the next batch's transaction (see
 * docs/decisions/0005-group-commit-with-wal-sync-off-the-event-loop.md).
 */
type Pending<Tx> = { op: (tx: Tx) => Promise<void>; resolve: () => void; reject: (e: unknown) => void };

export class GroupCommit<Tx> {
  private pending: Pending<Tx>[] = [];
  /** Writes no caller waits on to act: they ride in the next batch, or go alone after `deferMs`. */
  private deferred: Pending<Tx>[] = [];
  private deferTimer: NodeJS.Timeout | undefined;
  private scheduled = false;
  private running: Promise<void> = Promise.resolve();
  /** Acknowledgements go out in commit order. */
  private acknowledged: Promise<void> = Promise.resolve();
  private syncInFlight: Promise<void> | undefined;
  private syncQueued: Promise<void> | undefined;

  constructor(
    private readonly runTransaction: (body: (tx: Tx) => Promise<void>) => Promise<void>,
    private readonly maxBatch = 512,
    private readonly sync?: () => Promise<void>,
    private readonly deferMs = 20,
  ) {}

  write(op: (tx: Tx) => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ op, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * A write that must become durable but that nobody waits on before acting — an
   * outcome recorded after the answer went out, bookkeeping rows. At one request at a
   * time, committing it alone made the next request's write wait for its sync and then
   * one more; here it joins the next batch (before that batch's own writes, so order is
   * kept), or commits by itself after `deferMs`. Its promise settles like any write's.
   */
  writeDeferred(op: (tx: Tx) => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.deferred.push({ op, resolve, reject });
      if (this.deferred.length >= this.maxBatch) this.promoteDeferred();
      else if (!this.deferTimer) {
        this.deferTimer = setTimeout(() => this.promoteDeferred(), this.deferMs);
        this.deferTimer.unref();
      }
    });
  }

  private promoteDeferred(): void {
    if (this.deferred.length === 0) return;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.scheduled = false;
    if (this.deferTimer) clearTimeout(this.deferTimer);
    this.deferTimer = undefined;
    const batch = [...this.deferred.splice(0), ...this.pending.splice(0, this.maxBatch)];
    if (this.pending.length > 0) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    // Batches run one after another so the order of commits follows the order of writes.
    this.running = this.running.then(async () => {
      try {
        await this.runTransaction(async (tx) => {
          for (const item of batch) await item.op(tx);
        });
      } catch (error) {
        for (const item of batch) item.reject(error);
        return;
      }
      if (!this.sync) {
        for (const item of batch) item.resolve();
        return;
      }
      const durable = this.syncAfterCommit();
      this.acknowledged = this.acknowledged.then(() =>
        durable.then(
          () => batch.forEach((item) => item.resolve()),
          (error: unknown) => batch.forEach((item) => item.reject(error)),
        ),
      );
    });
  }

  /**
   * A sync that starts after the commit just made. One already running may have begun
   * before it, so it waits for that one and then runs one more, which every commit made
   * in the meantime shares.
   */
  private syncAfterCommit(): Promise<void> {
    if (!this.syncInFlight) return this.startSync();
    this.syncQueued ??= this.syncInFlight
      .catch(() => undefined)
      .then(() => {
        this.syncQueued = undefined;
        return this.startSync();
      });
    return this.syncQueued;
  }

  private startSync(): Promise<void> {
    const run: Promise<void> = this.sync!().finally(() => {
      if (this.syncInFlight === run) this.syncInFlight = undefined;
    });
    this.syncInFlight = run;
    return run;
  }

  /** Resolves once everything queued so far has been committed (and synced) or failed. */
  async drain(): Promise<void> {
    this.promoteDeferred();
    while (this.pending.length > 0 || this.deferred.length > 0 || this.scheduled) await new Promise((r) => setImmediate(r));
    await this.running;
    await this.acknowledged;
  }
}
