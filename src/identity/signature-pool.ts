import type { KeyObject } from "node:crypto";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { MandateError } from "../errors/index.js";

/**
 * Importing a public key from DER and verifying with it cost the event loop well over
 * 100 µs per CSR under load; in worker threads they run beside the event loop instead.
 * Signing too: node's callback form of `crypto.sign` was measured doing an ECDSA P-256
 * signature's whole cost on the calling thread, so leaves are signed here as well. A
 * signing key is sent to a worker once (a KeyObject crosses threads by postMessage) and
 * kept there under its authority id.
 * The worker is inline source so the same code runs from TypeScript (tests) and the build.
 */
/** About 1 KiB of native memory each; enough for every agent of a large deployment renewing half-hourly against one control plane. */
const MAX_CACHED_PUBLIC_KEYS = 16_384;
/** SubjectPublicKeyInfo of an uncompressed P-256 point, up to the point's x and y: id-ecPublicKey, prime256v1, BIT STRING, 0x04. */
const P256_SPKI_PREFIX_HEX = "3059301306072a8648ce3d020106082a8648ce3d03010703420004";
const WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { createPublicKey, sign, verify } = require("node:crypto");
const signingKeys = new Map();
// Imported public keys by their SPKI bytes, least recently used first. A renewal's proof is
// signed by the key of the CSR the previous renewal verified, so its import (slower than
// the verification itself) is usually done already. Same bytes, same key: only speed depends on it.
const publicKeys = new Map();
const MAX_PUBLIC_KEYS = ${MAX_CACHED_PUBLIC_KEYS};
const P256_SPKI_PREFIX = Buffer.from("${P256_SPKI_PREFIX_HEX}", "hex");
function importKey(spki) {
  const der = Buffer.from(spki);
  // OpenSSL's SPKI decoder costs ~1.6x a JWK import of the same point (both reject a point off the curve).
  if (der.length === P256_SPKI_PREFIX.length + 64 && der.subarray(0, P256_SPKI_PREFIX.length).equals(P256_SPKI_PREFIX)) {
    const x = der.subarray(P256_SPKI_PREFIX.length, P256_SPKI_PREFIX.length + 32).toString("base64url");
    const y = der.subarray(P256_SPKI_PREFIX.length + 32).toString("base64url");
    return createPublicKey({ key: { kty: "EC", crv: "P-256", x, y }, format: "jwk" });
  }
  return createPublicKey({ key: der, format: "der", type: "spki" });
}
function publicKey(spki) {
  const id = Buffer.from(spki.buffer, spki.byteOffset, spki.byteLength).toString("latin1");
  let key = publicKeys.get(id);
  if (key) {
    publicKeys.delete(id);
  } else {
    key = importKey(spki);
    if (publicKeys.size >= MAX_PUBLIC_KEYS) publicKeys.delete(publicKeys.keys().next().value);
  }
  publicKeys.set(id, key);
  return key;
}
parentPort.on("message", (batch) => {
  const results = batch.map((job) => {
    if (job.keyId !== undefined) {
      try {
        if (job.key) signingKeys.set(job.keyId, job.key);
        const key = signingKeys.get(job.keyId);
        return key ? sign("sha256", Buffer.from(job.data), key) : null;
      } catch {
        return null;
      }
    }
    try {
      const key = publicKey(job.spki);
      return verify(job.hash, Buffer.from(job.data), job.p1363 ? { key, dsaEncoding: "ieee-p1363" } : key, Buffer.from(job.signature));
    } catch {
      return false;
    }
  });
  parentPort.postMessage(results);
});
`;

type Result = boolean | Uint8Array | null;

interface VerifyMessage {
  hash: string | null;
  spki: Uint8Array;
  data: Uint8Array;
  signature: Uint8Array;
  /** ECDSA signature as r‖s (JWS) rather than DER (X.509, PKCS#10). */
  p1363: boolean;
}

interface SignMessage {
  keyId: string;
  /** Sent with the first job for this key on each worker only. */
  key?: KeyObject;
  data: Uint8Array;
}

interface Job {
  message: VerifyMessage | SignMessage;
  /** For sign jobs: the key, attached to the message when this worker has not seen it. */
  signingKey?: KeyObject;
  resolve: (result: Result) => void;
  reject: (error: unknown) => void;
}

class CryptoWorker {
  private readonly worker: Worker;
  private inFlight: Job[] | undefined;
  private readonly queue: Job[] = [];
  private dispatchScheduled = false;
  private readonly keysSent = new Set<string>();

  constructor() {
    this.worker = new Worker(WORKER_SOURCE, { eval: true });
    this.worker.unref();
    this.worker.on("message", (results: Result[]) => {
      const batch = this.inFlight ?? [];
      this.inFlight = undefined;
      batch.forEach((job, i) => job.resolve(results[i] ?? null));
      this.dispatch();
    });
    this.worker.on("error", (error) => {
      for (const job of [...(this.inFlight ?? []), ...this.queue.splice(0)]) job.reject(new MandateError("INTERNAL", "signature worker failed", { cause: error }));
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
    const messages = this.inFlight.map((job) => {
      if (!job.signingKey || !("keyId" in job.message)) return job.message;
      if (this.keysSent.has(job.message.keyId)) return job.message;
      this.keysSent.add(job.message.keyId);
      return { ...job.message, key: job.signingKey };
    });
    this.worker.postMessage(messages);
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

/**
 * A copy with its own exact-size buffer. Posting a view clones its whole backing buffer:
 * a Buffer sliced from node's 8 KiB pool, or from a request body, would travel entire.
 */
function exact(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

export class SignatureVerifierPool {
  private readonly workers: CryptoWorker[];

  constructor(size = Math.max(1, availableParallelism() - 1)) {
    this.workers = Array.from({ length: size }, () => new CryptoWorker());
  }

  private submit(job: Omit<Job, "resolve" | "reject">, worker = this.workers.reduce((a, b) => (b.load < a.load ? b : a))): Promise<Result> {
    return new Promise((resolve, reject) => worker.submit({ ...job, resolve, reject }));
  }

  /**
   * Verifications with one key go to one worker, so its imported key is found there again
   * (the next renewal's proof is signed by this renewal's CSR key). The sum of the bytes is
   * as random as the key's own bits, so the workers share the load evenly.
   */
  private workerFor(spkiDer: Uint8Array): CryptoWorker {
    if (this.workers.length === 1) return this.workers[0]!;
    let sum = 0;
    for (const byte of spkiDer) sum += byte;
    return this.workers[sum % this.workers.length]!;
  }

  /** Verifies `signature` over `data` with the key in `spkiDer` (DER SubjectPublicKeyInfo). */
  async verify(hash: string | null, spkiDer: Uint8Array, data: Uint8Array, signature: Uint8Array, options: { p1363?: boolean } = {}): Promise<boolean> {
    return (await this.submit({ message: { hash, spki: exact(spkiDer), data: exact(data), signature: exact(signature), p1363: options.p1363 === true } }, this.workerFor(spkiDer))) === true;
  }

  /** A SHA-256 signature (DER-encoded for ECDSA) by `privateKey`, which each worker keeps under `keyId` after its first use. */
  async sign(keyId: string, privateKey: KeyObject, data: Uint8Array): Promise<Buffer> {
    const result = await this.submit({ message: { keyId, data: exact(data) }, signingKey: privateKey });
    if (!(result instanceof Uint8Array)) throw new MandateError("CA_UNAVAILABLE", "signing failed in the signature worker");
    return Buffer.from(result.buffer, result.byteOffset, result.byteLength);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
