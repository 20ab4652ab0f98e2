import { describe, expect, it } from "vitest";
import { compileRole } from "./compile.js";
import { createPolicyEngine } from "./create.js";
import { type RuntimeList, staticSnapshot } from "./engine.js";
import { parseRoleDocuments } from "./role-document.js";
import { accessRequest, agent, db, delegateTo, delegation, link, llm, mcp, scope, T0, user } from "./testing.js";
import type { AccessRequest, Decision, DecisionLayer } from "./types.js";

export const ROLES = `
kind: role
name: incident-reader
description: read-only incident work on the cluster
allow:
  mcp:
    - servers: [k8s]
      tools: ["read_*", "get_*", "list_*"]
    - servers: [k8s]
      tools: [rollback, scale]
    - servers: [docs]
      prompts: ["*"]
      resources: ["file:///runbooks/**"]
  llm:
    models: ["gpt-4.1*"]
    providers: [openai]
deny:
  mcp:
    servers: ["*"]
    tools: [kubectl_exec]
require_approval:
  mcp:
    servers: [k8s]
    tools: [rollback]
---
kind: role
name: sre
allow:
  mcp:
    - servers: ["**"]
  llm:
    - models: ["**"]
  db:
    - databases: [orders, "analytics-*"]
      users: [readonly, app]
      statements: [select, insert, update]
  delegate:
    - agents: ["deploy-*", "log-reader"]
      max_ttl: 1h
    - agents: ["*"]
      labels: "team=payments"
      max_ttl: 10m
deny:
  db:
    - statements: [ddl, dcl]
require_approval:
  db:
    - databases: [orders]
      statements: [update]
approve: ["mcp:k8s/*", "db:orders/**"]
---
kind: role
name: namespaced
allow:
  mcp:
    - servers: [k8s]
      tools: [apply]
      conditions: 'context.args has namespace && context.args.namespace like "checkout*"'
    - servers: [k8s]
      tools: [restart]
      conditions: "context.time.hour >= 9 && context.time.hour < 17"
    - servers: [k8s]
      tools: [scale]
      conditions:
        - 'context.args has replicas'
        - 'context.args.replicas <= 10'
    - servers: [k8s]
      tools: [drain]
deny:
  mcp:
    - servers: [k8s]
      tools: [apply]
      conditions: 'context.args has force && context.args.force == true'
    - servers: [k8s]
      tools: [drain]
      conditions: 'context.args.nodes > 3'
require_approval:
  mcp:
    - servers: [k8s]
      tools: [scale]
      conditions: 'context.args.replicas > 5'
---
kind: role
name: labelled
allow:
  mcp:
    - servers: ["*"]
      labels: "env in (prod,staging),!deprecated"
  llm:
    - providers: [anthropic]
      actions: ["llm.chat"]
---
kind: role
name: principal-aware
allow:
  mcp:
    - servers: [k8s]
      tools: [read_logs]
      conditions: 'principal.labels has team && principal.labels.team == "payments" && resource.server == "k8s"'
  delegate:
    - agents: [log-reader]
      max_ttl: 15m
---
kind: role
name: approver-only
approve: ["mcp:*/rollback"]
`;

const auditor = agent("deploy-auditor", ["incident-reader"]);
const alice = user("alice", ["sre"]);
const bob = user("bob", ["incident-reader"]);
const nsAgent = agent("ns-agent", ["namespaced"]);
const labelled = agent("labelled-agent", ["labelled"]);
const payments = agent("payments-bot", ["principal-aware"], { team: "payments" });
const nobody = agent("nobody", []);
const ghost = agent("ghost", ["no-such-role"]);
const logReader = agent("log-reader", ["incident-reader"]);

const grant = link("d-123", alice, "deploy-auditor", scope(["mcp:k8s/read_*", "llm:gpt-4.1-mini", "mcp:*/rollback", "mcp:k8s/kubectl_exec"], ["mcp:*/kubectl_exec"], ["mcp:*/rollback"], 2));
const d123 = delegation("d-123", [grant]);
const sub = link("d-456", auditor, "log-reader", scope(["mcp:k8s/read_logs", "mcp:k8s/read_events"]));
const chain = delegation("d-456", [grant, sub]);
const bobGrant = delegation("d-bob", [link("d-bob", bob, "deploy-auditor", scope(["**"]))]);
const aliceToAlice = delegation("d-wide", [link("d-wide", alice, "deploy-auditor", scope(["**"]))]);

interface Row {
  name: string;
  request: AccessRequest;
  runtime?: RuntimeList;
  allow: boolean;
  deniedBy?: DecisionLayer;
  reason?: RegExp;
  approvalRule?: RegExp;
  policyId?: RegExp;
}

const rows: Row[] = [
  // agent roles alone
  { name: "role allows a read tool", request: accessRequest(auditor, mcp("k8s", "read_logs")), allow: true, policyId: /role:incident-reader\/allow\.mcp\[0\]/ },
  { name: "role allows get_*", request: accessRequest(auditor, mcp("k8s", "get_pods")), allow: true },
  { name: "role does not allow write", request: accessRequest(auditor, mcp("k8s", "write_config")), allow: false, deniedBy: "agent_roles", reason: /no role of agent deploy-auditor allows mcp:k8s\/write_config/ },
  { name: "role glob is per server", request: accessRequest(auditor, mcp("github", "read_issue")), allow: false, deniedBy: "agent_roles" },
  { name: "role deny beats every allow", request: accessRequest(auditor, mcp("k8s", "kubectl_exec")), allow: false, deniedBy: "agent_roles", reason: /role incident-reader of agent deploy-auditor denies mcp:k8s\/kubectl_exec \(deny\.mcp\[0\], line \d+\)/ },
  { name: "role deny on any server", request: accessRequest(alice, mcp("k8s", "kubectl_exec")), allow: true },
  { name: "role approval without delegation", request: accessRequest(auditor, mcp("k8s", "rollback")), allow: false, deniedBy: "approval", approvalRule: /role:incident-reader\/require_approval\.mcp\[0\]/ },
  { name: "role allows scale (no approval)", request: accessRequest(auditor, mcp("k8s", "scale")), allow: true },
  { name: "prompt rule on docs", request: accessRequest(auditor, mcp("docs", "incident", undefined, "prompt")), allow: true },
  { name: "resource uri glob crosses /", request: accessRequest(auditor, mcp("docs", "file:///runbooks/k8s/rollback.md", undefined, "resource")), allow: true },
  { name: "resource uri outside glob", request: accessRequest(auditor, mcp("docs", "file:///etc/passwd", undefined, "resource")), allow: false, deniedBy: "agent_roles" },
  { name: "tool on docs not covered by prompt/resource rule", request: accessRequest(auditor, mcp("docs", "search")), allow: false, deniedBy: "agent_roles" },
  { name: "llm model and provider", request: accessRequest(auditor, llm("gpt-4.1-mini", "openai")), allow: true },
  { name: "llm wrong provider", request: accessRequest(auditor, llm("gpt-4.1-mini", "azure")), allow: false, deniedBy: "agent_roles" },
  { name: "llm unknown provider", request: accessRequest(auditor, llm("gpt-4.1")), allow: false, deniedBy: "agent_roles" },
  { name: "llm other model", request: accessRequest(auditor, llm("claude-sonnet", "anthropic")), allow: false, deniedBy: "agent_roles" },
  { name: "no roles at all", request: accessRequest(nobody, mcp("k8s", "read_logs")), allow: false, deniedBy: "agent_roles", reason: /agent nobody has no role that allows/ },
  { name: "unknown role grants nothing", request: accessRequest(ghost, mcp("k8s", "read_logs")), allow: false, deniedBy: "agent_roles" },
  // databases
  { name: "db select as readonly", request: accessRequest(alice, db("orders", "readonly", "select")), allow: true },
  { name: "db analytics glob", request: accessRequest(alice, db("analytics-eu", "app", "select", "insert")), allow: true },
  { name: "db wrong user", request: accessRequest(alice, db("orders", "postgres", "select")), allow: false, deniedBy: "agent_roles", reason: /db:orders\/select/ },
  { name: "db delete not allowed", request: accessRequest(alice, db("orders", "app", "select", "delete")), allow: false, deniedBy: "agent_roles", reason: /db:orders\/delete/ },
  { name: "db ddl denied on any database", request: accessRequest(alice, db("orders", "app", "select", "ddl")), allow: false, deniedBy: "agent_roles", reason: /denies db:orders\/ddl/ },
  { name: "db update needs approval", request: accessRequest(alice, db("orders", "app", "update")), allow: false, deniedBy: "approval", approvalRule: /require_approval\.db\[0\]/ },
  { name: "db update elsewhere is fine", request: accessRequest(alice, db("analytics-us", "app", "update")), allow: true },
  // delegate rules
  { name: "delegate to deploy-* within ttl", request: accessRequest(alice, delegateTo("deploy-auditor", 30 * 60_000)), allow: true },
  { name: "delegate ttl over max", request: accessRequest(alice, delegateTo("deploy-auditor", 2 * 3600_000)), allow: false, deniedBy: "agent_roles", reason: /allows at most 3600s/ },
  { name: "delegate by label within 10m", request: accessRequest(alice, delegateTo("billing", 5 * 60_000, { team: "payments" })), allow: true },
  { name: "delegate by label over 10m", request: accessRequest(alice, delegateTo("billing", 20 * 60_000, { team: "payments" })), allow: false, deniedBy: "agent_roles" },
  { name: "delegate to unlisted agent", request: accessRequest(alice, delegateTo("billing", 60_000, { team: "search" })), allow: false, deniedBy: "agent_roles" },
  { name: "role without delegate rules", request: accessRequest(bob, delegateTo("deploy-auditor", 60_000)), allow: false, deniedBy: "agent_roles" },
  // Cedar conditions
  { name: "cedar: namespace arg matches", request: accessRequest(nsAgent, mcp("k8s", "apply"), { context: { args: { namespace: "checkout-prod" } } }), allow: true, policyId: /#cedar$/ },
  { name: "cedar: namespace arg differs", request: accessRequest(nsAgent, mcp("k8s", "apply"), { context: { args: { namespace: "kube-system" } } }), allow: false, deniedBy: "agent_roles", reason: /only when its conditions hold/ },
  { name: "cedar: missing arg never allows", request: accessRequest(nsAgent, mcp("k8s", "apply"), { context: { args: {} } }), allow: false, deniedBy: "agent_roles" },
  { name: "cedar: deny condition wins", request: accessRequest(nsAgent, mcp("k8s", "apply"), { context: { args: { namespace: "checkout", force: true } } }), allow: false, deniedBy: "agent_roles", reason: /denies/ },
  { name: "cedar: deny condition false", request: accessRequest(nsAgent, mcp("k8s", "apply"), { context: { args: { namespace: "checkout", force: false } } }), allow: true },
  { name: "cedar: deny condition false allows", request: accessRequest(nsAgent, mcp("k8s", "drain"), { context: { args: { nodes: 2 } } }), allow: true },
  { name: "cedar: deny condition erroring still denies", request: accessRequest(nsAgent, mcp("k8s", "drain"), { context: { args: { nodes: "many" } } }), allow: false, deniedBy: "agent_roles", reason: /denies/ },
  { name: "cedar: office hours", request: accessRequest(nsAgent, mcp("k8s", "restart"), { now: Date.UTC(2026, 0, 15, 10) }), allow: true },
  { name: "cedar: after hours", request: accessRequest(nsAgent, mcp("k8s", "restart"), { now: Date.UTC(2026, 0, 15, 22) }), allow: false, deniedBy: "agent_roles" },
  { name: "cedar: two conditions both hold", request: accessRequest(nsAgent, mcp("k8s", "scale"), { context: { args: { replicas: 3 } } }), allow: true },
  { name: "cedar: second condition fails", request: accessRequest(nsAgent, mcp("k8s", "scale"), { context: { args: { replicas: 30 } } }), allow: false, deniedBy: "agent_roles" },
  { name: "cedar: approval condition", request: accessRequest(nsAgent, mcp("k8s", "scale"), { context: { args: { replicas: 8 } } }), allow: false, deniedBy: "approval" },
  { name: "cedar: float args are strings, not errors", request: accessRequest(nsAgent, mcp("k8s", "apply"), { context: { args: { namespace: "checkout", weight: 0.5 } } }), allow: true },
  { name: "cedar: __entity keys are never read as entities (and fail closed)", request: accessRequest(nsAgent, mcp("k8s", "apply"), { context: { args: { namespace: "checkout", force: { __entity: { type: "X", id: "y" } } } } }), allow: false, deniedBy: "agent_roles" },
  { name: "cedar: padding arguments cannot hide what a deny condition reads", request: accessRequest(nsAgent, mcp("k8s", "apply"), { context: { args: { namespace: "checkout", padding: Array.from({ length: 5000 }, (_, i) => i), force: true } } }), allow: false, deniedBy: "agent_roles", reason: /denies/ },
  { name: "cedar: principal labels", request: accessRequest(payments, mcp("k8s", "read_logs")), allow: true },
  { name: "cedar: principal labels missing", request: accessRequest(agent("other", ["principal-aware"]), mcp("k8s", "read_logs")), allow: false, deniedBy: "agent_roles" },
  // label selectors on resources and action globs
  { name: "labels: prod server", request: accessRequest(labelled, mcp("billing", "charge", { env: "prod" })), allow: true },
  { name: "labels: dev server", request: accessRequest(labelled, mcp("billing", "charge", { env: "dev" })), allow: false, deniedBy: "agent_roles" },
  { name: "labels: deprecated excluded", request: accessRequest(labelled, mcp("billing", "charge", { env: "prod", deprecated: "yes" })), allow: false, deniedBy: "agent_roles" },
  { name: "labels: unlabelled resource", request: accessRequest(labelled, mcp("billing", "charge")), allow: false, deniedBy: "agent_roles" },
  { name: "actions: chat allowed", request: accessRequest(labelled, llm("claude-sonnet", "anthropic")), allow: true },
  { name: "actions: embeddings not listed", request: accessRequest(labelled, llm("claude-sonnet", "anthropic"), { action: "llm.embeddings" }), allow: false, deniedBy: "agent_roles" },
  // delegation scope
  { name: "delegation allows read", request: accessRequest(auditor, mcp("k8s", "read_logs"), { delegation: d123 }), allow: true, policyId: /delegation:d-123\/allow:mcp:k8s\/read_\*/ },
  { name: "delegation does not allow get", request: accessRequest(auditor, mcp("k8s", "get_pods"), { delegation: d123 }), allow: false, deniedBy: "delegation", reason: /^denied: delegation d-123 does not allow mcp:k8s\/get_pods$/ },
  { name: "delegation deny beats its allow", request: accessRequest(auditor, mcp("k8s", "kubectl_exec"), { delegation: d123 }), allow: false, deniedBy: "delegation", reason: /delegation d-123 denies mcp:k8s\/kubectl_exec/ },
  { name: "delegation approval", request: accessRequest(auditor, mcp("k8s", "rollback"), { delegation: d123 }), allow: false, deniedBy: "approval", approvalRule: /delegation:d-123\/require_approval:mcp:\*\/rollback/ },
  { name: "delegation model", request: accessRequest(auditor, llm("gpt-4.1-mini", "openai"), { delegation: d123 }), allow: true },
  { name: "delegation other model", request: accessRequest(auditor, llm("gpt-4.1", "openai"), { delegation: d123 }), allow: false, deniedBy: "delegation" },
  { name: "delegation scope cannot exceed agent role", request: accessRequest(auditor, mcp("github", "read_issue"), { delegation: delegation("d-gh", [link("d-gh", alice, "deploy-auditor", scope(["mcp:**"]))]) }), allow: false, deniedBy: "agent_roles" },
  { name: "expired delegation", request: accessRequest(auditor, mcp("k8s", "read_logs"), { delegation: d123, now: T0 + 31 * 60_000 }), allow: false, deniedBy: "delegation", reason: /expired/ },
  { name: "expiry is exclusive", request: accessRequest(auditor, mcp("k8s", "read_logs"), { delegation: d123, now: d123.expiresAt }), allow: false, deniedBy: "delegation" },
  { name: "revoked delegation", request: accessRequest(auditor, mcp("k8s", "read_logs"), { delegation: { ...d123, revoked: true } }), allow: false, deniedBy: "delegation", reason: /revoked/ },
  { name: "delegation to someone else", request: accessRequest(logReader, mcp("k8s", "read_logs"), { delegation: d123 }), allow: false, deniedBy: "delegation", reason: /granted to deploy-auditor/ },
  { name: "empty chain", request: accessRequest(auditor, mcp("k8s", "read_logs"), { delegation: { ...d123, chain: [] } }), allow: false, deniedBy: "input" },
  { name: "max spend obligation", request: accessRequest(auditor, llm("gpt-4.1-mini", "openai"), { delegation: d123 }), allow: true },
  // delegator roles
  { name: "delegator's roles must allow too", request: accessRequest(auditor, mcp("k8s", "read_logs"), { delegation: bobGrant }), allow: true },
  { name: "delegator bob lacks llm claude (agent has it? no)", request: accessRequest(labelled, llm("claude-sonnet", "anthropic"), { delegation: delegation("d-b2", [link("d-b2", bob, "labelled-agent", scope(["**"]))]) }), allow: false, deniedBy: "delegator_roles", reason: /no role of user bob allows llm:claude-sonnet/ },
  { name: "delegator role deny applies", request: accessRequest(agent("deploy-auditor", ["sre"]), mcp("k8s", "kubectl_exec"), { delegation: bobGrant }), allow: false, deniedBy: "delegator_roles", reason: /role incident-reader of user bob denies/ },
  { name: "delegator approval applies", request: accessRequest(agent("deploy-auditor", ["sre"]), mcp("k8s", "rollback"), { delegation: bobGrant }), allow: false, deniedBy: "approval", approvalRule: /role:incident-reader\/require_approval/ },
  { name: "wide scope from sre", request: accessRequest(auditor, mcp("k8s", "read_logs"), { delegation: aliceToAlice }), allow: true },
  // sub-delegation chain
  { name: "chain: both scopes allow", request: accessRequest(logReader, mcp("k8s", "read_logs"), { delegation: chain }), allow: true },
  { name: "chain: child scope narrower", request: accessRequest(logReader, mcp("k8s", "read_config"), { delegation: chain }), allow: false, deniedBy: "delegation", reason: /delegation d-456 does not allow/ },
  { name: "chain: child scope wider than parent", request: accessRequest(logReader, mcp("k8s", "get_pods"), { delegation: delegation("d-789", [grant, link("d-789", auditor, "log-reader", scope(["mcp:k8s/**"]))]) }), allow: false, deniedBy: "delegation", reason: /delegation d-123 does not allow/ },
  { name: "chain: parent link expired", request: accessRequest(logReader, mcp("k8s", "read_logs"), { delegation: delegation("d-456", [{ ...grant, expiresAt: T0 - 1 }, sub], { expiresAt: T0 + 60_000 }) }), allow: false, deniedBy: "delegation", reason: /d-123 .*expired/ },
  { name: "chain: middle agent's role denies", request: accessRequest(agent("log-reader", ["sre"]), mcp("k8s", "kubectl_exec"), { delegation: delegation("d-x", [aliceToAlice.chain[0]!, link("d-x", auditor, "log-reader", scope(["**"]))]) }), allow: false, deniedBy: "delegator_roles", reason: /agent deploy-auditor denies/ },
  // runtime allow-list
  { name: "runtime default allows", request: accessRequest(auditor, mcp("k8s", "read_logs")), runtime: { allow: [], deny: [] }, allow: true },
  { name: "runtime allow-list covers", request: accessRequest(auditor, mcp("k8s", "read_logs")), runtime: { allow: ["mcp:k8s/**", "llm:**"], deny: [] }, allow: true, policyId: /runtime:allow:mcp:k8s\/\*\*/ },
  { name: "runtime allow-list omits", request: accessRequest(auditor, llm("gpt-4.1-mini", "openai")), runtime: { allow: ["mcp:**"], deny: [] }, allow: false, deniedBy: "runtime", reason: /runtime allow-list does not allow llm:gpt-4.1-mini/ },
  { name: "runtime emergency deny", request: accessRequest(alice, mcp("k8s", "read_logs")), runtime: { allow: [], deny: ["mcp:k8s/**"] }, allow: false, deniedBy: "runtime", reason: /runtime deny list blocks/ },
  { name: "runtime deny beats delegation and roles", request: accessRequest(auditor, mcp("k8s", "read_logs"), { delegation: d123 }), runtime: { allow: ["**"], deny: ["mcp:*/read_logs"] }, allow: false, deniedBy: "runtime" },
  { name: "runtime deny per statement class", request: accessRequest(alice, db("orders", "app", "select", "insert")), runtime: { allow: [], deny: ["db:*/insert"] }, allow: false, deniedBy: "runtime" },
  // input
  { name: "bad resource", request: accessRequest(auditor, mcp("k8s/x", "read_logs")), allow: false, deniedBy: "input" },
  { name: "megabyte resource uri", request: accessRequest(auditor, mcp("docs", `file:///runbooks/${"x/".repeat(500_000)}`, undefined, "resource")), allow: false, deniedBy: "input", reason: /at most 4096/ },
  { name: "malformed chain link", request: accessRequest(auditor, mcp("k8s", "read_logs"), { delegation: delegation("d-bad", [{ ...grant, scope: undefined as never }]) }), allow: false, deniedBy: "input" },
  { name: "malformed delegator", request: accessRequest(auditor, mcp("k8s", "read_logs"), { delegation: delegation("d-bad2", [{ ...grant, delegator: { kind: "user", name: "x" } as never }]) }), allow: false, deniedBy: "input" },
  { name: "db without statements", request: accessRequest(alice, { kind: "db", database: "orders", dbUser: "app", statements: [], tables: [], functions: [] }), allow: false, deniedBy: "input" },
];

describe("authorize: decision table", () => {
  it("has at least 60 decisions", () => expect(rows.length).toBeGreaterThanOrEqual(60));
  const engines = new Map<string, ReturnType<typeof createPolicyEngine>>();
  const engineFor = (runtime?: RuntimeList) => {
    const key = JSON.stringify(runtime ?? null);
    if (!engines.has(key)) engines.set(key, createPolicyEngine({ roles: ROLES, runtime }));
    return engines.get(key)!;
  };
  it.each(rows)("$name", (row) => {
    const engine = engineFor(row.runtime);
    const decision: Decision = engine.authorize(row.request);
    expect({ allow: decision.allow, deniedBy: decision.deniedBy }, decision.reasons.join(" | ")).toEqual({ allow: row.allow, deniedBy: row.allow ? undefined : row.deniedBy });
    if (row.reason) expect(decision.reasons[0]).toMatch(row.reason);
    if (row.policyId) expect(decision.policyIds.some((id) => row.policyId!.test(id)), decision.policyIds.join(",")).toBe(true);
    if (row.approvalRule) {
      const obligation = decision.obligations.find((o) => o.kind === "approval_required");
      expect(obligation && obligation.kind === "approval_required" ? obligation.rule : "").toMatch(row.approvalRule);
    }
    if (!decision.allow) expect(decision.reasons[0]).toMatch(/^(denied|approval required): /);
  });
});

describe("authorize: obligations and reasons", () => {
  const engine = createPolicyEngine({ roles: ROLES });
  it("passes the delegation's spend ceiling on model traffic", () => {
    const decision = engine.authorize(accessRequest(auditor, llm("gpt-4.1-mini", "openai"), { delegation: d123 }));
    expect(decision.obligations).toContainEqual({ kind: "max_spend", usd: 2, delegationId: "d-123" });
  });
  it("says which layers allowed", () => {
    const decision = engine.authorize(accessRequest(auditor, mcp("k8s", "read_logs"), { delegation: d123 }));
    expect(decision.reasons).toEqual(expect.arrayContaining([expect.stringMatching(/^allowed: delegation d-123/), expect.stringMatching(/^allowed: role incident-reader of agent deploy-auditor/), expect.stringMatching(/^allowed: role sre of user alice/)]));
  });
  it("names the approval rule once when role and delegation both require it", () => {
    const decision = engine.authorize(accessRequest(auditor, mcp("k8s", "rollback"), { delegation: d123 }));
    expect(decision.obligations.filter((o) => o.kind === "approval_required").map((o) => (o as { rule: string }).rule)).toEqual(["delegation:d-123/require_approval:mcp:*/rollback", "role:incident-reader/require_approval.mcp[0]"]);
  });
});

describe("mayApprove", () => {
  const engine = createPolicyEngine({ roles: ROLES });
  it.each([
    [alice, "mcp:k8s/rollback", true],
    [alice, "db:orders/update", true],
    [alice, "mcp:github/merge", false],
    [user("carol", ["approver-only"]), "mcp:github/rollback", true],
    [user("carol", ["approver-only"]), "mcp:github/deploy", false],
    [bob, "mcp:k8s/rollback", false],
  ] as const)("%s may approve %s: %s", (principal, resource, expected) => {
    expect(engine.mayApprove(principal, resource)).toBe(expected);
  });
});

describe("fails closed", () => {
  it("refuses everything while the policy view is stale", () => {
    const fresh = createPolicyEngine({ roles: ROLES });
    expect(fresh.authorize(accessRequest(alice, mcp("k8s", "read_logs"))).allow).toBe(true);
    const snapshot = staticSnapshot(parseRoleDocuments(ROLES).map(compileRole));
    const stale = createPolicyEngine({ source: { snapshot: () => snapshot, stale: () => "the role view could not be refreshed for 6s" } });
    expect(stale.authorize(accessRequest(alice, mcp("k8s", "read_logs")))).toMatchObject({ allow: false, deniedBy: "runtime", reasons: ["denied: the role view could not be refreshed for 6s"] });
  });

  it("evaluates conditions safely on hostile tool arguments (deep, wide, reserved keys)", () => {
    const engine = createPolicyEngine({ roles: ROLES });
    let deep: Record<string, unknown> = { namespace: "checkout" };
    for (let i = 0; i < 10_000; i++) deep = { nested: deep };
    const wide = Array.from({ length: 100_000 }, (_, i) => ({ [`k${i}`]: i }));
    const started = performance.now();
    // too deep, too wide, reserved keys: evaluated quickly, and failing closed (the allow condition does not pass)
    for (const args of [{ namespace: "checkout", deep }, { namespace: "checkout", wide }, { namespace: "checkout", __extn: { fn: "ip", arg: "1.2.3.4" } }]) {
      const decision = engine.authorize(accessRequest(nsAgent, mcp("k8s", "apply"), { context: { args } }));
      expect(decision.allow, decision.reasons.join(" | ")).toBe(false);
    }
    expect(engine.authorize(accessRequest(nsAgent, mcp("k8s", "apply"), { context: { args: { namespace: "checkout", nested: { a: { b: [1, 2, { c: "d" }] } } } } })).allow).toBe(true);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(engine.authorize(accessRequest(nsAgent, mcp("k8s", "apply"), { context: { args: deep } })).allow).toBe(false);
  });
});
