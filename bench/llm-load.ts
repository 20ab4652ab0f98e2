import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";

/**
 * The LLM benchmark's load generator, in its own process: `concurrency` closed-loop
 * clients over kept-alive connections for `durationMs` (after a warm-up), each request
 * timed with performance.now() to the last byte, and for streams to the first byte.
 */
export interface LlmLoadSpec {
  url: string;
  headers: Record<string, string>;
  body: string;
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  tls?: { ca: string; cert?: string; key?: string };
  /** A streamed answer must begin as an SSE event: a 200 that is not a stream counts as failed. */
  expectSse?: boolean;
}

export interface LlmLoadResult {
  completed: number;
  /** Every answered request, warm-up included: what the proxy's CPU time over the phase is divided by. */
  answered: number;
  failed: number;
  firstError: string;
  perSecond: number;
  p50: number;
  p99: number;
  ttfbP50: number;
  ttfbP99: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function run(spec: LlmLoadSpec): Promise<LlmLoadResult> {
  const url = new URL(spec.url);
  const secure = url.protocol === "https:";
  const agent = secure ? new HttpsAgent({ keepAlive: true, maxSockets: spec.concurrency, ...spec.tls }) : new HttpAgent({ keepAlive: true, maxSockets: spec.concurrency });
  const body = Buffer.from(spec.body);
  const headers = { ...spec.headers, "content-type": "application/json", "content-length": String(body.length) };
  const one = () =>
    new Promise<{ status: number; total: number; ttfb: number; sse: boolean }>((resolve, reject) => {
      const started = performance.now();
      let ttfb = 0;
      let sse = false;
      const req = (secure ? httpsRequest : httpRequest)(url, { method: "POST", agent, headers }, (res: IncomingMessage) => {
        res.on("data", (chunk: Buffer) => {
          if (ttfb !== 0) return;
          ttfb = performance.now() - started;
          sse = /^(data|event):/.test(chunk.toString("latin1", 0, 6));
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, total: performance.now() - started, ttfb, sse }));
        res.on("error", reject);
      });
      req.on("error", reject);
      req.end(body);
    });
  const latencies: number[] = [];
  const ttfbs: number[] = [];
  let failed = 0;
  let answered = 0;
  let firstError = "";
  let measuring = false;
  const startedAt = Date.now();
  const measureFrom = startedAt + spec.warmupMs;
  const deadline = measureFrom + spec.durationMs;
  let measuredSince = 0;
  await Promise.all(
    Array.from({ length: spec.concurrency }, async () => {
      while (Date.now() < deadline) {
        try {
          const r = await one();
          answered++;
          if (!measuring && Date.now() >= measureFrom) {
            measuring = true;
            measuredSince = performance.now();
          }
          if (!measuring) continue;
          if (r.status !== 200) {
            failed++;
            firstError ||= `HTTP ${r.status}`;
            continue;
          }
          if (spec.expectSse && !r.sse) {
            failed++;
            firstError ||= "HTTP 200 without an event stream";
            continue;
          }
          latencies.push(r.total);
          ttfbs.push(r.ttfb);
        } catch (error) {
          failed++;
          firstError ||= (error as Error).message;
        }
      }
    }),
  );
  const elapsed = (performance.now() - measuredSince) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  ttfbs.sort((a, b) => a - b);
  return { completed: latencies.length, answered, failed, firstError, perSecond: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), ttfbP50: percentile(ttfbs, 50), ttfbP99: percentile(ttfbs, 99) };
}

if (process.send) {
  process.once("message", (spec) => {
    void run(spec as LlmLoadSpec).then((result) => {
      process.send!(result, () => process.exit(0));
    });
  });
}
