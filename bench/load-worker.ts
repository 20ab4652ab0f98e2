import { Agent, request } from "node:https";
import { createSecureContext } from "node:tls";
import { parentPort, workerData } from "node:worker_threads";

/**
 * A bounded closed-loop load generator: `concurrency` requests in flight over
 * kept-alive mTLS connections, for `durationMs`, then it stops by itself.
 */
interface LoadSpec {
  url: string;
  ca: string;
  cert: string;
  key: string;
  bodies: string[];
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  /**
   * Renewal mode: each slot is one agent instance that renews with its current SVID over
   * a new mTLS connection, with a fresh key (`keys[i]` belongs to `bodies[i]`), and uses
   * the returned SVID next time, as `mandate daemon` does.
   */
  renewal?: { identities: { cert: string; key: string }[]; keys: string[] };
  /** Baseline mode: a new mTLS connection per request with one cached TLS context, GET only. */
  freshConnections?: boolean;
}

// Runs as a child process (the benchmark's default: client and server do not share a heap or an event loop) or as a worker thread.
const spec = (parentPort ? workerData : await new Promise((resolve) => process.once("message", resolve))) as LoadSpec;
const agent = new Agent({ keepAlive: true, maxSockets: spec.concurrency, ca: spec.ca, cert: spec.cert, key: spec.key });
const identities = spec.renewal?.identities.map((i) => ({ ...i })) ?? [];
const freshContext = spec.freshConnections ? createSecureContext({ ca: spec.ca, cert: spec.cert, key: spec.key }) : undefined;
let completed = 0;
let failed = 0;
let firstError = "";
const latencies: number[] = [];
let measuring = false;
const started = Date.now();
const deadline = started + spec.warmupMs + spec.durationMs;

function one(i: number, slot: number): Promise<void> {
  return new Promise((resolve) => {
    const bodyIndex = i % spec.bodies.length;
    const body = spec.bodies[bodyIndex]!;
    const t0 = performance.now();
    const identity = identities[slot];
    const tls = identity ? { agent: false as const, ca: spec.ca, cert: identity.cert, key: identity.key } : freshContext ? { agent: false as const, secureContext: freshContext } : { agent };
    const method = freshContext ? "GET" : "POST";
    const headers = freshContext ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) };
    const req = request(spec.url, { method, ...tls, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        if (identity && res.statusCode === 200) {
          identity.cert = (JSON.parse(Buffer.concat(chunks).toString()) as { svidPem: string }).svidPem;
          identity.key = spec.renewal!.keys[bodyIndex]!;
        }
        if (measuring) {
          if (res.statusCode === 200) {
            completed++;
            latencies.push(performance.now() - t0);
          } else {
            failed++;
            firstError ||= `${res.statusCode} ${Buffer.concat(chunks).toString().slice(0, 200)}`;
          }
        }
        resolve();
      });
    });
    req.on("error", (error) => {
      if (measuring) failed++;
      firstError ||= error.message;
      resolve();
    });
    req.end(freshContext ? undefined : body);
  });
}

async function loop(worker: number): Promise<void> {
  let i = worker;
  while (Date.now() < deadline) {
    await one(i, worker);
    i += spec.concurrency;
  }
}

setTimeout(() => {
  measuring = true;
}, spec.warmupMs);
const t0 = Date.now();
await Promise.all(Array.from({ length: spec.concurrency }, (_, w) => loop(w)));
agent.destroy();
latencies.sort((a, b) => a - b);
const measuredSeconds = (Date.now() - t0 - spec.warmupMs) / 1000;
const report = (message: unknown) => (parentPort ? parentPort.postMessage(message) : process.send!(message, () => process.exit(0)));
report({
  completed,
  failed,
  firstError,
  perSecond: completed / measuredSeconds,
  p50: latencies[Math.floor(latencies.length * 0.5)] ?? 0,
  p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0,
});
