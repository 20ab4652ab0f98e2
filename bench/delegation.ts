import { startGateHarness } from "../src/delegation/testing.js";
import type { GateRequest } from "../src/policy/index.js";

/**
 * The access gate's cost per decision (`context.access.authorize`), in-process, over 1,000
 * live grants: a delegation token seen before (signature remembered; lifetime, audience,
 * subject, grant chain, locks and the policy decision checked every time), a token's first
 * use (ES256 verification too), and an agent without a delegation.
 *   npm run build && node dist/bench/delegation.js      (BENCH_ITERATIONS, default 50000)
 */
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 50_000);
const GRANTS = 1000;
const AGENTS = ["deploy-auditor", "log-reader", "deploy-helper"];

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

async function measure(name: string, requests: GateRequest[], authorize: (r: GateRequest) => Promise<{ allow: boolean; reasons: string[] }>, iterations: number): Promise<void> {
  const times: number[] = [];
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const request = requests[i % requests.length]!;
    const t = process.hrtime.bigint();
    const decision = await authorize(request);
    times.push(Number(process.hrtime.bigint() - t) / 1000);
    if (!decision.allow) throw new Error(`${name}: ${decision.reasons[0]}`);
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  times.sort((a, b) => a - b);
  console.log(`${name.padEnd(44)} ${Math.round(iterations / seconds).toLocaleString("en").padStart(9)}/s  p50 ${percentile(times, 0.5).toFixed(1).padStart(7)} µs  p99 ${percentile(times, 0.99).toFixed(1).padStart(7)} µs`);
}

const h = await startGateHarness();
try {
  const alice = { kind: "user" as const, name: "alice", spiffeId: "spiffe://example.test/user/alice" };
  const warm: GateRequest[] = [];
  const cold: GateRequest[] = [];
  for (let i = 0; i < GRANTS; i++) {
    const agent = AGENTS[i % AGENTS.length]!;
    const grant = await h.layer.service.create(alice, { agent, task: `task-${i}`, ttlMs: 3600_000, scope: { allow: ["mcp:k8s/read_*", "llm:gpt-4.1-mini"], deny: ["mcp:*/kubectl_exec"], requireApproval: ["mcp:*/rollback"] } });
    warm.push(h.request(agent, "mcp:k8s/read_logs", await h.tokenFor(grant.id, agent)));
    cold.push(h.request(agent, "mcp:k8s/read_pods", await h.tokenFor(grant.id, agent)));
  }
  const gate = (r: GateRequest) => h.layer.gate.authorize(r);
  // Measured first, before any token is remembered (ECDSA signatures differ, so no two tokens are the same string).
  await measure("first use of each token (ES256 verify)", cold, gate, cold.length);
  for (const r of warm) await gate(r);
  await measure(`token seen before, ${GRANTS} live grants`, warm, gate, ITERATIONS);
  const bare = AGENTS.map((a) => h.request(a, "mcp:k8s/read_logs"));
  await measure("no delegation (agent roles only)", bare, gate, ITERATIONS);
} finally {
  await h.close();
}
