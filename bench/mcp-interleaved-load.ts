import { type McpBenchClient, type McpTarget, mcpBenchClient, quantile } from "./mcp-client.js";

/**
 * One client, several targets, taken in turns: each round gives every target a slice of
 * `sliceMs` (a closed loop of tools/call on its own session), in an order rotated each
 * round. A shared machine's slow spells then fall on all targets alike, instead of on
 * whichever row happened to run during one, so the differences between targets are the
 * targets' own. Bounded: `rounds` × targets × `sliceMs` after one warm-up slice each.
 */
interface InterleavedSpec {
  targets: (McpTarget & { name: string })[];
  rounds: number;
  sliceMs: number;
  warmupMs: number;
  tool: string;
  arguments: Record<string, unknown>;
}

export interface InterleavedResult {
  name: string;
  completed: number;
  failed: number;
  firstError: string;
  perSecond: number;
  p50: number;
  p99: number;
}

const spec = (await new Promise((resolve) => process.once("message", resolve))) as InterleavedSpec;
interface Lane {
  target: McpTarget & { name: string };
  client: McpBenchClient;
  session: string;
  id: number;
  latencies: number[];
  busyMs: number;
  failed: number;
  firstError: string;
}
const lanes: Lane[] = [];
for (const target of spec.targets) {
  const client = mcpBenchClient(target, 1);
  lanes.push({ target, client, session: await client.openSession(), id: 1, latencies: [], busyMs: 0, failed: 0, firstError: "" });
}

async function slice(lane: Lane, ms: number, measured: boolean): Promise<void> {
  const start = performance.now();
  const end = start + ms;
  while (performance.now() < end) {
    const t0 = performance.now();
    try {
      await lane.client.callTool(lane.session, lane.id++, spec.tool, spec.arguments);
      if (measured) lane.latencies.push(performance.now() - t0);
    } catch (error) {
      lane.failed++;
      lane.firstError ||= (error as Error).message;
    }
  }
  if (measured) lane.busyMs += performance.now() - start;
}

for (const lane of lanes) await slice(lane, spec.warmupMs, false);
for (let round = 0; round < spec.rounds; round++) {
  for (let i = 0; i < lanes.length; i++) await slice(lanes[(i + round) % lanes.length]!, spec.sliceMs, true);
}
const results: InterleavedResult[] = lanes.map((lane) => {
  const sorted = lane.latencies.sort((a, b) => a - b);
  return { name: lane.target.name, completed: sorted.length, failed: lane.failed, firstError: lane.firstError, perSecond: sorted.length / (lane.busyMs / 1000), p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99) };
});
for (const lane of lanes) lane.client.close();
process.send!(results);
process.exit(0);
