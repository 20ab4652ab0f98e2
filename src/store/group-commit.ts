/**
 * Collects writes issued in the same event-loop turn and commits them in one
 * transaction: one fsync acknowledges many callers, so durable writes scale with
 * concurrency instead of the disk's fsync rate. A caller's promise resolves only
 * after its write is committed; if the batch fails, every caller in it sees the error.
 */
export class GroupCommit<Tx> {
  private pending: { op: (tx: Tx) => Promise<void>; resolve: () => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;
  private running: Promise<void> = Promise.resolve();

  constructor(
    private readonly runTransaction: (body: (tx: Tx) => Promise<void>) => Promise<void>,
    private readonly maxBatch = 512,
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

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending.splice(0, this.maxBatch);
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
        for (const item of batch) item.resolve();
      } catch (error) {
        for (const item of batch) item.reject(error);
      }
    });
  }

  /** Resolves once everything queued so far has been committed or failed. */
  async drain(): Promise<void> {
    while (this.pending.length > 0 || this.scheduled) await new Promise((r) => setImmediate(r));
    await this.running;
  }
}
