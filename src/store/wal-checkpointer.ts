import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/**
 * SQLite copies the write-ahead log back into the database ("checkpoints") from the
 * connection whose commit crosses `wal_autocheckpoint` pages: on the event loop, inside
 * that commit, fsync of the database file included. Measured here, that made every
 * commit ~100 µs slower on average and some of them 10–20 ms slower — the p99 of every
 * audited call. So the main connection's automatic checkpoints are off, and a worker
 * thread with its own connection runs PASSIVE checkpoints, which never wait for or
 * block the writer. Under steady writes they never quite catch up, and SQLite starts
 * the log over only once a checkpoint has: so when the log has grown past a size, the
 * main connection, right after a commit, copies the few frames the worker left (a
 * fraction of a millisecond, against 10–20 ms for a whole inline checkpoint) and the
 * next commit starts the log from the beginning. Durability does not depend on any of
 * this (commits are acknowledged after the WAL itself is synced); it only bounds the WAL.
 *
 * If the worker cannot run, the main connection checkpoints for itself again.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
let db;
parentPort.on("message", (message) => {
  if (message === "close") {
    db?.close();
    db = undefined;
    parentPort.postMessage({ closed: true });
    return;
  }
  try {
    db ??= new Database(workerData.path, { fileMustExist: true });
    const [result] = db.pragma("wal_checkpoint(PASSIVE)");
    parentPort.postMessage({ ok: true, result });
  } catch (error) {
    parentPort.postMessage({ ok: false, error: String(error && error.message || error) });
  }
});
`;

export interface WalCheckpointerOptions {
  /** Ask for a checkpoint after this many commits… */
  everyCommits?: number;
  /** …or this long after the first commit since the last one. */
  maxDelayMs?: number;
  /** Checkpoint at least this often while open. */
  sweepMs?: number;
  /** Log size (in frames) past which the main connection finishes a checkpoint itself. */
  restartFrames?: number;
  /** Runs a passive checkpoint on the main connection, outside any transaction. */
  catchUp: () => void;
  /** Where better-sqlite3 is loaded from in the worker (default: this package's). */
  driver?: string;
  /** Turns the main connection's own checkpoints back on (the fallback). */
  resumeInlineCheckpoints: () => void;
}

export class WalCheckpointer {
  private readonly worker: Worker;
  private commitsSince = 0;
  private inFlight = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly sweep: NodeJS.Timeout;
  private failed = false;
  private catchUpWanted = false;
  private closing: Promise<void> | undefined;
  /** Checkpoints completed and failed, for tests and health output. */
  readonly stats = { completed: 0, failed: 0, caughtUp: 0, lastError: undefined as string | undefined };

  constructor(
    path: string,
    private readonly options: WalCheckpointerOptions,
  ) {
    const driver = options.driver ?? createRequire(import.meta.url).resolve("better-sqlite3");
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path, driver } });
    this.worker.unref();
    this.worker.on("message", (message: { ok?: boolean; error?: string; closed?: boolean; result?: { log: number; checkpointed: number } }) => {
      if (message.closed) return;
      this.inFlight = false;
      if (message.ok) {
        this.stats.completed++;
        if ((message.result?.log ?? 0) >= (this.options.restartFrames ?? 1024)) this.catchUpWanted = true;
      }
      else {
        // A deleted or read-only file: the store's own guard reports it; the next request retries.
        this.stats.failed++;
        this.stats.lastError = message.error;
      }
      if (this.commitsSince > 0) this.schedule();
    });
    this.worker.on("error", (error) => this.fallBack(error.message));
    this.worker.on("exit", () => {
      if (!this.closing) this.fallBack("the checkpoint worker exited");
    });
    // Writes made outside group commit are not counted; a slow sweep catches them too.
    this.sweep = setInterval(() => this.request(), options.sweepMs ?? 1000);
    this.sweep.unref();
  }

  /** Called after each commit that wrote to the WAL, outside the transaction, on the connection that made it. */
  noteCommit(): void {
    if (this.failed || this.closing) return;
    if (this.catchUpWanted) {
      this.catchUpWanted = false;
      try {
        this.options.catchUp();
        this.stats.caughtUp++;
      } catch (error) {
        this.stats.lastError = (error as Error).message;
      }
    }
    this.commitsSince++;
    if (this.commitsSince >= (this.options.everyCommits ?? 64)) this.request();
    else this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.inFlight) return;
    this.timer = setTimeout(() => this.request(), this.options.maxDelayMs ?? 200);
    this.timer.unref();
  }

  private request(): void {
    if (this.inFlight || this.failed || this.closing) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.commitsSince = 0;
    this.inFlight = true;
    this.worker.postMessage("checkpoint");
  }

  private fallBack(reason: string): void {
    if (this.failed) return;
    this.failed = true;
    this.stats.lastError = reason;
    if (this.timer) clearTimeout(this.timer);
    clearInterval(this.sweep);
    this.options.resumeInlineCheckpoints();
  }

  /** Closes the worker's connection before the main one, so the last close can remove the WAL. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.timer) clearTimeout(this.timer);
      clearInterval(this.sweep);
      if (!this.failed) {
        const closed = new Promise<void>((resolve) => {
          const onMessage = (message: { closed?: boolean }) => {
            if (!message.closed) return;
            this.worker.off("message", onMessage);
            resolve();
          };
          this.worker.on("message", onMessage);
          this.worker.once("exit", () => resolve());
        });
        this.worker.postMessage("close");
        await Promise.race([closed, new Promise((r) => setTimeout(r, 2000).unref())]);
      }
      await this.worker.terminate();
    })();
    return this.closing;
  }
}
