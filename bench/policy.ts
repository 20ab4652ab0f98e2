import { cedarIsAuthorized, cedarRequest, compileCondition, createPolicyEngine, type AccessRequest, type ResolvedDelegation } from "../src/policy/index.js";
import * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import { accessRequest, agent, delegation, link, mcp, scope, user } from "../src/policy/testing.js";

/**
 * `authorize` speed over a realistic snapshot: 200 roles, 1,000 active grants (synthesized
 * resolved delegations, one per request in turn), glob-only decisions and decisions whose
 * deciding rule carries a Cedar condition, beside bare Cedar calls in the same run (the
 * unprepared `isAuthorized`, which parses the policy every time, and the pre-parsed
 * `statefulIsAuthorized` the engine uses).
 *   npm run bench:policy        (BENCH_ITERATIONS, default 200000)
 */
const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 200_000);
const ROLES = 200;
const GRANTS = 1000;
const SERVERS = ["k8s", "github", "jira", "fs", "slack", "pagerduty", "grafana", "vault"];
const CONDITION = 'context.args has namespace && context.args.namespace like "checkout*" && context.time.hour < 24';

function roleYaml(i: number): string {
  const server = SERVERS[i % SERVERS.length]!;
  const other = SERVERS[(i + 3) % SERVERS.length]!;
  const conditioned = i % 10 === 0;
  return `kind: role
name: role-${i}
description: synthesized role ${i}
allow:
  mcp:
    - servers: [${server}]
      tools: ["read_*", "get_*", "list_*", "describe_${i}"]
    - servers: ["${other}"]
      tools: ["search*", "view_*"]
    - servers: [${server}]
      tools: ["apply_*"]${conditioned ? `\n      conditions: '${CONDITION}'` : ""}
  llm:
    - models: ["gpt-4.1*", "claude-*"]
  db:
    - databases: ["db-${i % 20}", "analytics-*"]
      users: [readonly]
      statements: [select]
deny:
  mcp:
    - servers: ["*"]
      tools: [kubectl_exec, "delete_*"]
require_approval:
  mcp:
    - servers: [${server}]
      tools: [rollback]
approve: ["mcp:${server}/*"]
`;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

interface Measurement {
  name: string;
  perSecond: number;
  p50us: number;
  p99us: number;
}

function round(name: string, iterations: number, call: (i: number) => unknown): Measurement {
  const samples = new Float64Array(iterations);
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) {
    const t = process.hrtime.bigint();
    call(i);
    samples[i] = Number(process.hrtime.bigint() - t) / 1000;
  }
  const totalSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  samples.sort();
  return { name, perSecond: Math.round(iterations / totalSeconds), p50us: +percentile(samples, 0.5).toFixed(2), p99us: +percentile(samples, 0.99).toFixed(2) };
}

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const show = (m: Measurement, tag: string) =>
  console.log(`${`${m.name} ${tag}`.padEnd(60)} ${String(m.perSecond).padStart(9)}/s  p50 ${m.p50us.toFixed(2).padStart(7)} µs  p99 ${m.p99us.toFixed(2).padStart(8)} µs`);

/**
 * Several rounds, each reported, and the round with the lowest p99 kept: on a shared
 * machine a tail is mostly the scheduler (a longer call straddles more preemptions), and
 * the best round is the closest to what the code costs.
 */
function measure(name: string, iterations: number, call: (i: number) => unknown): Measurement & { rounds: Measurement[] } {
  for (let i = 0; i < Math.min(20_000, iterations); i++) call(i);
  const rounds: Measurement[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    rounds.push(round(name, Math.ceil(iterations / ROUNDS), call));
    show(rounds[r]!, `[round ${r + 1}]`);
  }
  const best = rounds.reduce((a, b) => (b.p99us < a.p99us ? b : a));
  show(best, "[best]");
  return { ...best, rounds };
}

const started = performance.now();
const yaml = Array.from({ length: ROLES }, (_, i) => roleYaml(i)).join("---\n");
const engine = createPolicyEngine({ roles: yaml, runtime: { allow: ["mcp:**", "llm:**", "db:**"], deny: ["mcp:*/drop_everything"] } });
console.log(`compiled ${ROLES} roles in ${(performance.now() - started).toFixed(0)} ms`);

// Agents hold 2 roles, delegators (people) 3; each grant is one link from a person to an agent.
const agents = Array.from({ length: 100 }, (_, i) => agent(`agent-${i}`, [`role-${(i * 2) % ROLES}`, `role-${(i * 2 + 1) % ROLES}`]));
const people = Array.from({ length: 50 }, (_, i) => user(`user-${i}`, [`role-${(i * 4) % ROLES}`, `role-${(i * 4 + 2) % ROLES}`, `role-${(i * 4 + 1) % ROLES}`]));
const now = Date.now();
const grants: { request: (resource: ReturnType<typeof mcp>, args?: Record<string, unknown>) => AccessRequest }[] = [];
for (let g = 0; g < GRANTS; g++) {
  const a = agents[g % agents.length]!;
  // the delegator shares the agent's first role, so most requests pass every layer
  const p = user(`user-${g % people.length}`, [...people[g % people.length]!.roles, a.roles[0]!]);
  const server = SERVERS[(((g % agents.length) * 2) % ROLES) % SERVERS.length]!;
  const grant: ResolvedDelegation = delegation(`d-${g}`, [link(`d-${g}`, p, a.name, scope([`mcp:${server}/read_*`, `mcp:${server}/get_*`, `mcp:${server}/apply_*`, "llm:gpt-4.1-mini", `mcp:*/rollback`], ["mcp:*/kubectl_exec"], ["mcp:*/rollback"], 5), now + 3600_000)], { task: `task-${g}` });
  grants.push({ request: (resource, args) => accessRequest(a, resource, { delegation: grant, now, ...(args ? { context: { args } } : {}) }) });
}

const serverOf = (g: number) => SERVERS[(((g % agents.length) * 2) % ROLES) % SERVERS.length]!;
const globRequests = grants.map((g, i) => g.request(mcp(serverOf(i), i % 4 === 3 ? "kubectl_exec" : `read_logs_${i % 7}`)));
const cedarGrants = grants.filter((_, i) => ((i % agents.length) * 2) % 10 === 0);
const cedarRequests = cedarGrants.map((g, i) => g.request(mcp(serverOf(grants.indexOf(g)), "apply_manifest"), { namespace: i % 2 ? "checkout-eu" : "payments", replicas: 3 }));

// Sanity: the work measured is the work intended.
const globDecisions = globRequests.map((r) => engine.authorize(r));
const cedarDecisions = cedarRequests.map((r) => engine.authorize(r));
const allowed = (ds: { allow: boolean }[]) => ds.filter((d) => d.allow).length;
console.log(`glob-only: ${allowed(globDecisions)}/${globDecisions.length} allowed; Cedar: ${allowed(cedarDecisions)}/${cedarDecisions.length} allowed, ${cedarDecisions.filter((d) => d.policyIds.some((id) => id.endsWith("#cedar"))).length} decided by a Cedar condition`);
if (!cedarDecisions.some((d) => d.policyIds.some((id) => id.endsWith("#cedar")))) throw new Error("the Cedar scenario never evaluates a condition");

const condition = compileCondition([CONDITION]);
if ("error" in condition) throw new Error(condition.error);
// The same request the engine hands Cedar (only the parts the condition reads), and the whole request.
const bare = cedarRequest(cedarRequests[0]!, "mcp:k8s/apply_manifest", now, condition.needs);
const full = cedarRequest(cedarRequests[0]!, "mcp:k8s/apply_manifest", now);
const text = condition.text;

const results = [
  measure("authorize, glob-only (1,000 grants round robin)", ITERATIONS, (i) => engine.authorize(globRequests[i % globRequests.length]!)),
  measure("authorize, deciding rule has a Cedar condition", Math.round(ITERATIONS / 4), (i) => engine.authorize(cedarRequests[i % cedarRequests.length]!)),
  measure("bare cedar statefulIsAuthorized (pre-parsed)", Math.round(ITERATIONS / 4), () => cedar.statefulIsAuthorized({ ...bare, preparsedPolicySetId: condition.id })),
  measure("bare cedar isAuthorized (parses each call)", Math.round(ITERATIONS / 8), () => cedarIsAuthorized({ ...bare, policies: { staticPolicies: text } })),
  measure("bare cedar statefulIsAuthorized, whole request", Math.round(ITERATIONS / 8), () => cedar.statefulIsAuthorized({ ...full, preparsedPolicySetId: condition.id })),
];
console.log(JSON.stringify({ roles: ROLES, grants: GRANTS, iterations: ITERATIONS, node: process.version, results }));
