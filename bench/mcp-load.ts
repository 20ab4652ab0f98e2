import http from "node:http";
import https from "node:https";

/**
 * Closed-loop MCP load in its own process: `concurrency` clients, each with its own
 * 2025-era Streamable HTTP session (initialize, initialized), calling one tool in a
 * loop over kept-alive connections for `durationMs` after a warm-up. Bounded by time.
 */
interface McpLoadSpec {
  url: string;
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  tool: string;
  arguments: Record<string, unknown>;
  tls?: { ca: string; cert: string; key: string };
  /** sent with every request, e.g. x-mandate-delegation */
  headers?: Record<string, string>;
}

const spec = (await new Promise((resolve) => process.once("message", resolve))) as McpLoadSpec;
const url = new URL(spec.url);
const client = url.protocol === "https:" ? https : http;
const agent = url.protocol === "https:" ? new https.Agent({ keepAlive: true, maxSockets: spec.concurrency, ...spec.tls }) : new http.Agent({ keepAlive: true, maxSockets: spec.concurrency });

function post(body: unknown, session?: string): Promise<{ status: number; session?: string; text: string }> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = client.request(url, { method: "POST", agent, headers: { ...spec.headers, "content-type": "application/json", accept: "application/json, text/event-stream", "content-length": Buffer.byteLength(payload), ...(session ? { "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" } : {}) } }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (c: string) => (text += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, session: res.headers["mcp-session-id"] as string | undefined, text }));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

async function openSession(): Promise<string> {
  const init = await post({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "bench", version: "1" } } });
  if (init.status !== 200 || !init.session) throw new Error(`initialize failed: HTTP ${init.status} ${init.text.slice(0, 200)}`);
  await post({ jsonrpc: "2.0", method: "notifications/initialized" }, init.session);
  return init.session;
}

const latencies: number[] = [];
let completed = 0;
/** every call, warm-up included: what the proxy's CPU time is divided by */
let calls = 0;
let failed = 0;
let firstError = "";
// Sessions open one after another: the setup burst is not what is measured.
const sessions: string[] = [];
for (let i = 0; i < spec.concurrency; i++) sessions.push(await openSession());
// The parent counts its CPU time from here: session setup is not the per-call cost.
process.send!({ calling: true });
const start = performance.now();
const measureFrom = start + spec.warmupMs;
const deadline = measureFrom + spec.durationMs;
await Promise.all(
  sessions.map(async (session) => {
    let id = 1;
    while (performance.now() < deadline) {
      const t0 = performance.now();
      calls++;
      try {
        const answer = await post({ jsonrpc: "2.0", id: id++, method: "tools/call", params: { name: spec.tool, arguments: spec.arguments } }, session);
        if (answer.status !== 200 || !answer.text.includes('"result"')) throw new Error(`HTTP ${answer.status}: ${answer.text.slice(0, 200)}`);
        if (t0 >= measureFrom) {
          latencies.push(performance.now() - t0);
          completed++;
        }
      } catch (error) {
        failed++;
        firstError ||= (error as Error).message;
      }
    }
  }),
);
latencies.sort((a, b) => a - b);
const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
process.send!({ completed, calls, failed, firstError, perSecond: completed / (spec.durationMs / 1000), p50: pick(0.5), p99: pick(0.99) });
agent.destroy();
process.exit(0);
