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

interface Answer {
  status: number;
  total: number;
  ttfb: number;
  sse: boolean;
}

/** One kept-alive client for `spec`: `one()` sends the body and times the answer. */
function requester(spec: Pick<LlmLoadSpec, "url" | "headers" | "body" | "tls">, maxSockets: number): { one: () => Promise<Answer>; close: () => void } {
  const url = new URL(spec.url);
  const secure = url.protocol === "https:";
  const agent = secure ? new HttpsAgent({ keepAlive: true, maxSockets, ...spec.tls }) : new HttpAgent({ keepAlive: true, maxSockets });
  const body = Buffer.from(spec.body);
  const headers = { ...spec.headers, "content-type": "application/json", "content-length": String(body.length) };
  const one = () =>
    new Promise<Answer>((resolve, reject) => {
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
  return { one, close: () => agent.destroy() };
}

/** Why an answer does not count, or undefined when it does. */
function rejection(expectSse: boolean | undefined, r: Answer): string | undefined {
  if (r.status !== 200) return `HTTP ${r.status}`;
  if (expectSse && !r.sse) return "HTTP 200 without an event stream";
  return undefined;
}

async function run(spec: LlmLoadSpec): Promise<LlmLoadResult> {
  const { one, close } = requester(spec, spec.concurrency);
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
          const why = rejection(spec.expectSse, r);
          if (why) {
            failed++;
            firstError ||= why;
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
  close();
  latencies.sort((a, b) => a - b);
  ttfbs.sort((a, b) => a - b);
  return { completed: latencies.length, answered, failed, firstError, perSecond: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), ttfbP50: percentile(ttfbs, 50), ttfbP99: percentile(ttfbs, 99) };
}

export interface InterleavedSpec {
  targets: (Omit<LlmLoadSpec, "concurrency" | "durationMs" | "warmupMs"> & { name: string })[];
  rounds: number;
  sliceMs: number;
  warmupMs: number;
}

/**
 * One client, the targets in turns: every round gives each a slice of `sliceMs` (order
 * rotated per round), so a shared machine's slow spells fall on all of them alike.
 */
async function runInterleaved(spec: InterleavedSpec): Promise<(LlmLoadResult & { name: string })[]> {
  const lanes = spec.targets.map((target) => ({ target, client: requester(target, 1), latencies: [] as number[], ttfbs: [] as number[], busyMs: 0, answered: 0, failed: 0, firstError: "" }));
  const slice = async (lane: (typeof lanes)[number], ms: number, measured: boolean) => {
    const start = performance.now();
    while (performance.now() < start + ms) {
      try {
        const r = await lane.client.one();
        lane.answered++;
        if (!measured) continue;
        const why = rejection(lane.target.expectSse, r);
        if (why) {
          lane.failed++;
          lane.firstError ||= why;
          continue;
        }
        lane.latencies.push(r.total);
        lane.ttfbs.push(r.ttfb);
      } catch (error) {
        lane.failed++;
        lane.firstError ||= (error as Error).message;
      }
    }
    if (measured) lane.busyMs += performance.now() - start;
  };
  for (const lane of lanes) await slice(lane, spec.warmupMs, false);
  for (let round = 0; round < spec.rounds; round++) for (let i = 0; i < lanes.length; i++) await slice(lanes[(i + round) % lanes.length]!, spec.sliceMs, true);
  return lanes.map((lane) => {
    lane.client.close();
    const latencies = lane.latencies.sort((a, b) => a - b);
    const ttfbs = lane.ttfbs.sort((a, b) => a - b);
    return { name: lane.target.name, completed: latencies.length, answered: lane.answered, failed: lane.failed, firstError: lane.firstError, perSecond: latencies.length / (lane.busyMs / 1000), p50: percentile(latencies, 50), p99: percentile(latencies, 99), ttfbP50: percentile(ttfbs, 50), ttfbP99: percentile(ttfbs, 99) };
  });
}

if (process.send) {
  process.once("message", (spec) => {
    const work: Promise<unknown> = "targets" in (spec as object) ? runInterleaved(spec as InterleavedSpec) : run(spec as LlmLoadSpec);
    void work.then((result) => {
      process.send!(result, () => process.exit(0));
    });
  });
}
