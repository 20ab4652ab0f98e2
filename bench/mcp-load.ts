import { type McpTarget, mcpBenchClient, quantile } from "./mcp-client.js";

/**
 * Closed-loop MCP load in its own process: `concurrency` clients, each with its own
 * 2025-era Streamable HTTP session (initialize, initialized), calling one tool in a
 * loop over kept-alive connections for `durationMs` after a warm-up. Bounded by time.
 */
interface McpLoadSpec extends McpTarget {
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  tool: string;
  arguments: Record<string, unknown>;
}

const spec = (await new Promise((resolve) => process.once("message", resolve))) as McpLoadSpec;
const client = mcpBenchClient(spec, spec.concurrency);

const latencies: number[] = [];
let completed = 0;
/** every call, warm-up included: what the proxy's CPU time is divided by */
let calls = 0;
let failed = 0;
let firstError = "";
// Sessions open one after another: the setup burst is not what is measured.
const sessions: string[] = [];
for (let i = 0; i < spec.concurrency; i++) sessions.push(await client.openSession());
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
        await client.callTool(session, id++, spec.tool, spec.arguments);
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
process.send!({ completed, calls, failed, firstError, perSecond: completed / (spec.durationMs / 1000), p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99) });
client.close();
process.exit(0);
