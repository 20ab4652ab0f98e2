import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { MandateError } from "../errors/index.js";

/**
 * Importing a public key from DER and verifying with it cost the event loop well over
 * 100 µs per CSR under load; in worker threads they run beside the event loop instead.
 * The worker is inline source so the same code runs from TypeScript (tests) and the build.
 */
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createPublicKey, verify } = require("node:crypto");
parentPort.on("message", (batch) => {
  const results = batch.map((job) => {
    try {
      const key = createPublicKey({ key: Buffer.from(job.spki), format: "der", type: "spki" });
      return verify(job.hash, Buffer.from(job.data), job.p1363 ? { key, dsaEncoding: "ieee-p1363" } : key, Buffer.from(job.signature));
    } catch {
      return false;
    }
  });
  parentPort.postMessage(results);
});
`;

interface Job {
  hash: string | null;
  spki: Uint8Array;
  data: Uint8Array;
  signature: Uint8Array;
  /** ECDSA signature as r‖s (JWS) rather than DER (X.509, PKCS#10). */
  p1363: boolean;
  resolve: (ok: boolean) => void;
  reject: (error: unknown) => void;
}

class VerifierWorker {
  private readonly worker: Worker;
  private inFlight: Job[] | undefined;
  private readonly queue: Job[] = [];
  private dispatchScheduled = false;

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.unref();
    this.worker.on("message", (results: boolean[]) => {
      const batch = this.inFlight ?? [];
      this.inFlight = undefined;
      batch.forEach((job, i) => job.resolve(results[i] === true));
      this.dispatch();
    });
    this.worker.on("error", (error) => {
      for (const job of [...(this.inFlight ?? []), ...this.queue.splice(0)]) job.reject(new MandateError("INTERNAL", "signature verification worker failed", { cause: error }));
      this.inFlight = undefined;
    });
  }

  get load(): number {
    return this.queue.length + (this.inFlight?.length ?? 0);
  }

  submit(job: Job): void {
    this.queue.push(job);
    // Requests read in the same event-loop turn send their jobs in one message: posting costs the event loop more than a job.
    if (!this.dispatchScheduled) {
      this.dispatchScheduled = true;
      setImmediate(() => {
        this.dispatchScheduled = false;
        this.dispatch();
      });
    }
  }

  // Jobs that arrive while the worker is busy travel together: one message per batch, not per job.
  private dispatch(): void {
    if (this.inFlight || this.queue.length === 0) return;
    this.inFlight = this.queue.splice(0, 256);
    this.worker.postMessage(this.inFlight.map(({ hash, spki, data, signature, p1363 }) => ({ hash, spki, data, signature, p1363 })));
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

export class SignatureVerifierPool {
  private readonly workers: VerifierWorker[];

  constructor(size = Math.max(1, availableParallelism() - 1)) {
    this.workers = Array.from({ length: size }, () => new VerifierWorker());
  }

  /** Verifies `signature` over `data` with the key in `spkiDer` (DER SubjectPublicKeyInfo). */
  verify(hash: string | null, spkiDer: Uint8Array, data: Uint8Array, signature: Uint8Array, options: { p1363?: boolean } = {}): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const worker = this.workers.reduce((a, b) => (b.load < a.load ? b : a));
      worker.submit({ hash, spki: spkiDer, data, signature, p1363: options.p1363 === true, resolve, reject });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
