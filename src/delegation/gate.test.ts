import { createHmac, createPublicKey } from "node:crypto";
import * as fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MandateError } from "../errors/index.js";
import type { DelegationScope, GateDecision } from "../policy/index.js";
import { type GateHarness, PROXY_AUDIENCE, TRUST_DOMAIN, startGateHarness } from "./testing.js";
import type { Grant, GrantingCaller } from "./types.js";

const ALICE: GrantingCaller = { kind: "user", name: "alice", spiffeId: `spiffe://${TRUST_DOMAIN}/user/alice` };
const CAROL: GrantingCaller = { kind: "user", name: "carol", spiffeId: `spiffe://${TRUST_DOMAIN}/user/carol` };
const asAgent = (name: string): GrantingCaller => ({ kind: "agent", name, spiffeId: `spiffe://${TRUST_DOMAIN}/agent/${name}` });
const SCOPE: DelegationScope = { allow: ["mcp:k8s/read_*", "mcp:k8s/rollback", "llm:gpt-4.1-mini", "delegate:log-reader"], deny: ["mcp:*/kubectl_exec"], requireApproval: ["mcp:*/rollback"], maxSpendUsd: 2 };

const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
const parts = (token: string) => token.split(".").slice(0, 2).map((p) => JSON.parse(Buffer.from(p, "base64url").toString())) as [Record<string, unknown>, Record<string, unknown>];

interface Row {
  name: string;
  run(h: GateHarness): Promise<GateDecision>;
  allow: boolean;
  deniedBy?: string;
  reason?: RegExp;
  chain?: string[];
}

async function grant(h: GateHarness, scope: DelegationScope = SCOPE, ttlMs = 30 * 60_000, by: GrantingCaller = ALICE, agent = "deploy-auditor", parentId?: string): Promise<Grant> {
  return h.layer.service.create(by, { agent, task: "investigate-checkout-deploy", ttlMs, scope, ...(parentId ? { parentId } : {}) });
}

async function withToken(h: GateHarness, resource: string, options: { agent?: string; presenter?: string; scope?: DelegationScope; ttlMs?: number; by?: GrantingCaller; args?: Record<string, unknown> } = {}): Promise<GateDecision> {
  const agent = options.agent ?? "deploy-auditor";
  const g = await grant(h, options.scope, options.ttlMs, options.by, agent);
  const token = await h.tokenFor(g.id, agent);
  return h.layer.gate.authorize(h.request(options.presenter ?? agent, resource, token, options.args));
}

const ROWS: Row[] = [
  { name: "a read tool the delegation allows", run: (h) => withToken(h, "mcp:k8s/read_logs"), allow: true, chain: ["user:alice", "agent:deploy-auditor"] },
  { name: "a tool the delegation denies", run: (h) => withToken(h, "mcp:k8s/kubectl_exec"), allow: false, deniedBy: "delegation", reason: /denies mcp:k8s\/kubectl_exec/ },
  { name: "a tool outside the delegation's allow", run: (h) => withToken(h, "mcp:k8s/delete_pod"), allow: false, deniedBy: "delegation", reason: /does not allow mcp:k8s\/delete_pod/ },
  { name: "another server entirely", run: (h) => withToken(h, "mcp:payments/read_ledger"), allow: false, deniedBy: "delegation" },
  { name: "a model the delegation allows", run: (h) => withToken(h, "llm:gpt-4.1-mini"), allow: true },
  { name: "a model the agent's roles do not allow", run: (h) => withToken(h, "llm:claude-opus", { scope: { ...SCOPE, allow: ["llm:*"] } }), allow: false, deniedBy: "agent_roles" },
  { name: "a tool the delegator's roles do not allow", run: (h) => withToken(h, "mcp:k8s/scale", { scope: { allow: ["mcp:k8s/*"], deny: [], requireApproval: [] }, by: CAROL }), allow: false, deniedBy: "delegator_roles", reason: /carol/ },
  { name: "the delegator's roles allow it", run: (h) => withToken(h, "mcp:k8s/read_pods", { scope: { allow: ["mcp:k8s/*"], deny: [], requireApproval: [] }, by: CAROL }), allow: true },
  {
    name: "an expired grant",
    async run(h) {
      const g = await grant(h, SCOPE, 60_000);
      const token = await h.tokenFor(g.id, "deploy-auditor");
      h.clock.offsetMs += 61_000;
      await h.layer.service.registry.refresh();
      return h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/read_logs", token));
    },
    allow: false,
    deniedBy: "delegation",
    reason: /expired/,
  },
  {
    name: "a revoked grant",
    async run(h) {
      const g = await grant(h);
      const token = await h.tokenFor(g.id, "deploy-auditor");
      await h.layer.service.revoke(ALICE, g.id, "done");
      return h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/read_logs", token));
    },
    allow: false,
    deniedBy: "delegation",
    reason: /revoked at .* \(done\)/,
    // the refusal still names the grant and its chain, so the task's trace shows the attempt
    chain: ["user:alice", "agent:deploy-auditor"],
  },
  {
    name: "a child grant whose parent was revoked",
    async run(h) {
      const parent = await grant(h);
      const child = await grant(h, { allow: ["mcp:k8s/read_logs"], deny: [], requireApproval: [] }, 10 * 60_000, asAgent("deploy-auditor"), "log-reader", parent.id);
      const token = await h.tokenFor(child.id, "log-reader");
      await h.layer.service.revoke(ALICE, parent.id, "parent gone");
      return h.layer.gate.authorize(h.request("log-reader", "mcp:k8s/read_logs", token));
    },
    allow: false,
    deniedBy: "delegation",
    reason: /revoked/,
  },
  {
    name: "a grant whose delegator is locked",
    async run(h) {
      const g = await grant(h);
      const token = await h.tokenFor(g.id, "deploy-auditor");
      const lock = await h.locks.add({ kind: "spiffe_id", value: ALICE.spiffeId, reason: "account compromised", createdBy: "test" });
      try {
        return await h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/read_logs", token));
      } finally {
        await h.locks.remove(lock.id);
      }
    },
    allow: false,
    deniedBy: "lock",
    reason: /alice is locked \(account compromised\)/,
  },
  { name: "a delegation token replayed by another agent", run: (h) => withToken(h, "mcp:k8s/read_logs", { presenter: "intruder" }), allow: false, deniedBy: "delegation", reason: /issued to .*deploy-auditor but presented by .*intruder/ },
  {
    name: "a token whose scope claim was altered",
    async run(h) {
      const g = await grant(h);
      const token = await h.tokenFor(g.id, "deploy-auditor");
      const [header, payload] = parts(token);
      const tampered = `${b64(header)}.${b64({ ...payload, delegation_scope: { allow: ["**"], deny: [], require_approval: [] } })}.${token.split(".")[2]}`;
      return h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/kubectl_exec", tampered));
    },
    allow: false,
    deniedBy: "delegation",
    reason: /signature does not verify/,
  },
  {
    name: "a token with alg none",
    async run(h) {
      const g = await grant(h);
      const [header, payload] = parts(await h.tokenFor(g.id, "deploy-auditor"));
      return h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/read_logs", `${b64({ ...header, alg: "none" })}.${b64(payload)}.AAAA`));
    },
    allow: false,
    deniedBy: "delegation",
    reason: /algorithm "none" is not accepted/,
  },
  {
    name: "a token signed HS256 with the public key as the secret",
    async run(h) {
      const g = await grant(h);
      const [header, payload] = parts(await h.tokenFor(g.id, "deploy-auditor"));
      const input = `${b64({ ...header, alg: "HS256" })}.${b64(payload)}`;
      const secret = JSON.stringify(h.layer.service.tokens.jwks().keys[0]);
      return h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/read_logs", `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`));
    },
    allow: false,
    deniedBy: "delegation",
    reason: /algorithm "HS256" is not accepted/,
  },
  {
    name: "a token signed by another key",
    async run(h) {
      const g = await grant(h);
      const [header, payload] = parts(await h.tokenFor(g.id, "deploy-auditor"));
      const jose = await import("jose");
      const { privateKey } = await jose.generateKeyPair("ES256");
      const forged = await new jose.SignJWT(payload).setProtectedHeader(header as { alg: string }).sign(privateKey);
      return h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/read_logs", forged));
    },
    allow: false,
    deniedBy: "delegation",
    reason: /signature does not verify/,
  },
  {
    name: "a token for another audience",
    async run(h) {
      const g = await grant(h);
      const verified = await h.layer.service.verifyGrant(g.id, "deploy-auditor");
      const { token } = await h.layer.service.tokens.issue({ grant: g, agentSpiffeId: `spiffe://${TRUST_DOMAIN}/agent/deploy-auditor`, delegatorSpiffeIds: verified.resolved.chain.map(() => ALICE.spiffeId), audience: ["https://elsewhere.example"] });
      return h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/read_logs", token));
    },
    allow: false,
    deniedBy: "delegation",
    reason: /aud .* names none of this trust domain's proxies/,
  },
  { name: "garbage as a token", run: (h) => h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/read_logs", "not.a.jwt!")), allow: false, deniedBy: "delegation", reason: /compact serialization/ },
  {
    name: "every link's spend ceiling, tightest first, for a sub-delegation",
    async run(h) {
      const parent = await grant(h);
      const child = await grant(h, { allow: ["llm:gpt-4.1-mini"], deny: [], requireApproval: [], maxSpendUsd: 0.5 }, 10 * 60_000, asAgent("deploy-auditor"), "log-reader", parent.id);
      const decision = await h.layer.gate.authorize(h.request("log-reader", "llm:gpt-4.1-mini", await h.tokenFor(child.id, "log-reader")));
      expect(decision.obligations.filter((o) => o.kind === "max_spend")).toEqual([
        { kind: "max_spend", usd: 0.5, delegationId: child.id },
        { kind: "max_spend", usd: 2, delegationId: parent.id },
      ]);
      return decision;
    },
    allow: true,
  },
  { name: "no delegation token: the agent's own roles decide", run: (h) => h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/kubectl_exec")), allow: true },
  {
    name: "a workload identity that is neither agent nor person",
    run: (h) => h.layer.gate.authorize({ ...h.request("deploy-auditor", "mcp:k8s/read_logs"), caller: { kind: "workload", spiffeId: `spiffe://${TRUST_DOMAIN}/ci/runner`, via: "mtls", notAfter: new Date(h.now() + 60_000) } }),
    allow: false,
    deniedBy: "input",
  },
  {
    name: "a grant whose delegator was disabled",
    async run(h) {
      const g = await grant(h, { allow: ["mcp:k8s/read_*"], deny: [], requireApproval: [] }, 30 * 60_000, CAROL);
      const token = await h.tokenFor(g.id, "deploy-auditor");
      h.people.carol!.disabled = true;
      h.clock.offsetMs = 1500; // past the one-second principal cache
      try {
        return await h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/read_logs", token));
      } finally {
        h.people.carol!.disabled = false;
      }
    },
    allow: false,
    deniedBy: "delegation",
    reason: /carol is disabled/,
  },
  {
    name: "a person calling a proxy directly: their own roles decide",
    run: (h) => h.layer.gate.authorize({ ...h.request("deploy-auditor", "mcp:k8s/read_logs"), caller: { kind: "user", spiffeId: ALICE.spiffeId, user: "alice", via: "mtls", notAfter: new Date(h.now() + 60_000) } }),
    allow: true,
  },
  {
    name: "a person presenting an agent's delegation token",
    async run(h) {
      const g = await grant(h);
      const token = await h.tokenFor(g.id, "deploy-auditor");
      return h.layer.gate.authorize({ ...h.request("deploy-auditor", "mcp:k8s/read_logs", token), caller: { kind: "user", spiffeId: ALICE.spiffeId, user: "alice", via: "mtls", notAfter: new Date(h.now() + 60_000) } });
    },
    allow: false,
    deniedBy: "delegation",
    reason: /issued to .*deploy-auditor but presented by .*user\/alice/,
  },
  {
    name: "a sub-delegation: the child agent acts within the narrowed scope",
    async run(h) {
      const parent = await grant(h);
      const child = await grant(h, { allow: ["mcp:k8s/read_logs"], deny: [], requireApproval: [] }, 10 * 60_000, asAgent("deploy-auditor"), "log-reader", parent.id);
      return h.layer.gate.authorize(h.request("log-reader", "mcp:k8s/read_logs", await h.tokenFor(child.id, "log-reader")));
    },
    allow: true,
    chain: ["user:alice", "agent:deploy-auditor", "agent:log-reader"],
  },
  {
    name: "a sub-delegation inherits the parent's denies",
    async run(h) {
      const parent = await grant(h, { ...SCOPE, allow: [...SCOPE.allow, "mcp:k8s/*"] });
      const child = await grant(h, { allow: ["mcp:k8s/*"], deny: [], requireApproval: [] }, 10 * 60_000, asAgent("deploy-auditor"), "log-reader", parent.id);
      return h.layer.gate.authorize(h.request("log-reader", "mcp:k8s/kubectl_exec", await h.tokenFor(child.id, "log-reader")));
    },
    allow: false,
    deniedBy: "delegation",
    reason: /denies mcp:k8s\/kubectl_exec/,
  },
  {
    name: "the spend ceiling rides as an obligation",
    async run(h) {
      const decision = await withToken(h, "llm:gpt-4.1-mini");
      expect(decision.obligations).toContainEqual(expect.objectContaining({ kind: "max_spend", usd: 2 }));
      return decision;
    },
    allow: true,
  },
];

describe("the access gate: one row per situation", () => {
  let h: GateHarness;
  beforeAll(async () => {
    h = await startGateHarness();
  });
  afterAll(async () => h?.close());

  it.each(ROWS.map((r) => [r.name, r] as const))("%s", async (_name, row) => {
    const decision = await row.run(h);
    h.clock.offsetMs = 0;
    await h.layer.service.registry.refresh();
    expect(decision.allow, decision.reasons.join("; ")).toBe(row.allow);
    if (row.deniedBy) expect(decision.deniedBy).toBe(row.deniedBy);
    if (row.reason) expect(decision.reasons.join("\n")).toMatch(row.reason);
    if (row.chain) expect(decision.delegation?.chain).toEqual(row.chain);
  });
});

describe("grant creation: who may delegate, and attenuation", () => {
  let h: GateHarness;
  let parent: Grant;
  beforeAll(async () => {
    h = await startGateHarness();
    parent = await grant(h);
  });
  afterAll(async () => h?.close());

  const refusal = async (promise: Promise<unknown>): Promise<MandateError> => {
    try {
      await promise;
    } catch (error) {
      return error as MandateError;
    }
    throw new Error("expected a refusal");
  };

  it("a person without a delegate rule for the agent is refused by the policy engine", async () => {
    const error = await refusal(grant(h, SCOPE, 30 * 60_000, { kind: "user", name: "dave", spiffeId: `spiffe://${TRUST_DOMAIN}/user/dave` }));
    expect(error.code).toBe("PERMISSION_DENIED");
    expect(error.message).toMatch(/dave may not delegate to agent deploy-auditor/);
  });

  it("a delegate rule that selects agents by label matches the target agent's labels", async () => {
    const erin = { kind: "user" as const, name: "erin", spiffeId: `spiffe://${TRUST_DOMAIN}/user/erin` };
    const made = await grant(h, SCOPE, 5 * 60_000, erin, "pay-bot");
    expect(made.agent).toBe("pay-bot");
    const other = await refusal(grant(h, SCOPE, 5 * 60_000, erin, "ops-bot"));
    expect(other.code).toBe("PERMISSION_DENIED");
    expect(other.message).toMatch(/erin may not delegate to agent ops-bot/);
  });

  it("a TTL beyond the role's max_ttl is refused", async () => {
    const error = await refusal(grant(h, SCOPE, 2 * 3600_000));
    expect(error.code).toBe("PERMISSION_DENIED");
    expect(error.message).toMatch(/at most 3600s/);
  });

  it("widening scope is refused with SCOPE_WIDENING naming the pattern", async () => {
    const error = await refusal(grant(h, { allow: ["mcp:k8s/*"], deny: [], requireApproval: [] }, 60_000, asAgent("deploy-auditor"), "log-reader", parent.id));
    expect(error.code).toBe("SCOPE_WIDENING");
    expect(error.message).toContain('"mcp:k8s/*" is not covered by any allow of delegation');
  });

  it("outliving the parent is refused", async () => {
    const short = await grant(h, SCOPE, 60_000);
    const error = await refusal(grant(h, { allow: ["mcp:k8s/read_logs"], deny: [], requireApproval: [] }, 120_000, asAgent("deploy-auditor"), "log-reader", short.id));
    expect(error.code).toBe("SCOPE_WIDENING");
    expect(error.message).toMatch(/cannot outlive its parent/);
  });

  it("raising the spend ceiling is refused", async () => {
    const error = await refusal(grant(h, { allow: ["llm:gpt-4.1-mini"], deny: [], requireApproval: [], maxSpendUsd: 5 }, 60_000, asAgent("deploy-auditor"), "log-reader", parent.id));
    expect(error.code).toBe("SCOPE_WIDENING");
  });

  it("sub-delegating to an agent the parent scope does not name is refused", async () => {
    const error = await refusal(grant(h, { allow: ["mcp:k8s/read_logs"], deny: [], requireApproval: [] }, 60_000, asAgent("deploy-auditor"), "deploy-helper", parent.id));
    expect(error.code).toBe("PERMISSION_DENIED");
    expect(error.message).toMatch(/does not allow delegate:deploy-helper/);
  });

  it("only the holder sub-delegates; people delegate from their own access", async () => {
    expect((await refusal(grant(h, { allow: ["mcp:k8s/read_logs"], deny: [], requireApproval: [] }, 60_000, asAgent("intruder"), "log-reader", parent.id))).code).toBe("PERMISSION_DENIED");
    expect((await refusal(grant(h, SCOPE, 60_000, ALICE, "log-reader", parent.id))).code).toBe("INVALID_ARGUMENT");
    expect((await refusal(grant(h, SCOPE, 60_000, asAgent("deploy-auditor"), "log-reader"))).code).toBe("INVALID_ARGUMENT");
  });

  it("the depth limit (3 links) holds", async () => {
    const everything: DelegationScope = { allow: ["mcp:k8s/read_*", "delegate:*"], deny: [], requireApproval: [] };
    const root = await grant(h, { ...everything, allow: [...everything.allow, "delegate:log-reader", "delegate:deploy-helper"] });
    const second = await grant(h, everything, 60_000, asAgent("deploy-auditor"), "deploy-helper", root.id);
    const third = await grant(h, everything, 50_000, asAgent("deploy-helper"), "log-reader", second.id);
    expect(third.depth).toBe(3);
    const error = await refusal(grant(h, { allow: ["mcp:k8s/read_logs"], deny: [], requireApproval: [] }, 40_000, asAgent("log-reader"), "intruder", third.id));
    expect(error.code).toBe("DELEGATION_DEPTH_EXCEEDED");
  });

  it("bad scope patterns are refused before anything is stored", async () => {
    expect((await refusal(grant(h, { allow: ["k8s/read_*"], deny: [], requireApproval: [] }))).message).toMatch(/starts with its kind/);
    expect((await refusal(grant(h, { allow: [`mcp:${"*".repeat(40)}`], deny: [], requireApproval: [] }))).code).toBe("INVALID_ARGUMENT");
    expect((await refusal(grant(h, { allow: [], deny: [], requireApproval: [] }))).message).toMatch(/at least one --allow/);
  });

  it("revoking a parent revokes every descendant", async () => {
    const root = await grant(h);
    const child = await grant(h, { allow: ["mcp:k8s/read_logs"], deny: [], requireApproval: [] }, 60_000, asAgent("deploy-auditor"), "log-reader", root.id);
    expect((await h.layer.service.revoke(ALICE, root.id, "done")).sort()).toEqual([root.id, child.id].sort());
    expect((await h.layer.service.registry.get(child.id)).revokedAt).not.toBeNull();
  });
});

describe("approvals through the gate", () => {
  let h: GateHarness;
  beforeAll(async () => {
    h = await startGateHarness();
  });
  afterAll(async () => h?.close());

  it("pending → the same request again → approved once → consumed → pending anew; other arguments are another request", async () => {
    const g = await grant(h);
    const token = await h.tokenFor(g.id, "deploy-auditor");
    const ask = (args: Record<string, unknown>) => h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/rollback", token, args));
    const first = await ask({ deployment: "checkout" });
    expect(first).toMatchObject({ allow: false, deniedBy: "approval", accessRequest: { status: "pending" } });
    const id = first.accessRequest!.id;
    expect((await ask({ deployment: "checkout" })).accessRequest!.id).toBe(id);
    expect((await ask({ deployment: "payments" })).accessRequest!.id).not.toBe(id);
    await h.layer.requests.decide(id, { approve: true, by: "user:alice", reason: null, mode: "once", notAfter: g.expiresAt });
    const passed = await ask({ deployment: "checkout" });
    expect(passed).toMatchObject({ allow: true, accessRequest: { id, status: "approved" } });
    expect(passed.reasons[0]).toMatch(/approved by user:alice for this one call/);
    // Kept, so no proxy caches a decision that spent a single-use approval.
    expect(passed.obligations).toContainEqual(expect.objectContaining({ kind: "approval_required" }));
    const after = await ask({ deployment: "checkout" });
    expect(after.allow).toBe(false);
    expect(after.accessRequest!.id).not.toBe(id);
    expect((await h.layer.requests.get(id)).status).toBe("consumed");
  });

  it("a time-boxed approval passes every matching call until it lapses", async () => {
    const g = await grant(h);
    const token = await h.tokenFor(g.id, "deploy-auditor");
    const ask = () => h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/rollback", token, { deployment: "checkout" }));
    const id = (await ask()).accessRequest!.id;
    await h.layer.requests.decide(id, { approve: true, by: "user:alice", reason: "incident", mode: "window", windowMs: 60_000, notAfter: g.expiresAt });
    expect((await ask()).allow).toBe(true);
    expect((await ask()).allow).toBe(true);
    h.clock.offsetMs = 61_000;
    await h.layer.service.registry.refresh();
    const lapsed = await ask();
    h.clock.offsetMs = 0;
    expect(lapsed.allow).toBe(false);
    expect(lapsed.accessRequest!.status).toBe("pending");
    expect((await h.layer.requests.get(id)).uses).toBe(2);
  });

  it("a denied request stays denied; a decided request cannot be decided again", async () => {
    const g = await grant(h);
    const token = await h.tokenFor(g.id, "deploy-auditor");
    const ask = () => h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/rollback", token, {}));
    const id = (await ask()).accessRequest!.id;
    await h.layer.requests.decide(id, { approve: false, by: "user:alice", reason: "not now", mode: "once", notAfter: g.expiresAt });
    const again = await ask();
    expect(again).toMatchObject({ allow: false, deniedBy: "approval", accessRequest: { id, status: "denied" } });
    expect(again.reasons[0]).toMatch(/was denied by user:alice \(not now\)/);
    await expect(h.layer.requests.decide(id, { approve: true, by: "user:alice", reason: null, mode: "once", notAfter: g.expiresAt })).rejects.toMatchObject({ code: "CONFLICT" });
  });

  it("listing keeps an approval-gated tool visible without creating a request", async () => {
    const g = await grant(h);
    const token = await h.tokenFor(g.id, "deploy-auditor");
    const listed = await h.layer.gate.authorize({ ...h.request("deploy-auditor", "mcp:k8s/rollback", token), action: "mcp.tools/list" });
    expect(listed.allow).toBe(true);
    expect(listed.accessRequest).toBeUndefined();
    expect((await h.layer.requests.list({ status: "pending" })).filter((r) => r.delegationId === g.id)).toEqual([]);
  });

  it("two concurrent uses of a single-use approval: exactly one passes", async () => {
    const g = await grant(h);
    const token = await h.tokenFor(g.id, "deploy-auditor");
    const ask = () => h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/rollback", token, { n: 1 }));
    const id = (await ask()).accessRequest!.id;
    await h.layer.requests.decide(id, { approve: true, by: "user:alice", reason: null, mode: "once", notAfter: g.expiresAt });
    const results = await Promise.all(Array.from({ length: 8 }, ask));
    expect(results.filter((r) => r.allow)).toHaveLength(1);
  });
});

describe("properties", () => {
  let h: GateHarness;
  beforeAll(async () => {
    h = await startGateHarness();
  });
  afterAll(async () => h?.close());

  it("an expired grant never allows, whatever the resource and however long past expiry", async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 3600 }), fc.integer({ min: 0, max: 10 * 24 * 3600 }), fc.constantFrom("mcp:k8s/read_logs", "llm:gpt-4.1-mini", "mcp:k8s/rollback"), async (ttlSeconds, pastSeconds, resource) => {
        h.clock.offsetMs = 0;
        const g = await grant(h, SCOPE, ttlSeconds * 1000);
        const token = await h.tokenFor(g.id, "deploy-auditor");
        h.clock.offsetMs = ttlSeconds * 1000 + pastSeconds * 1000;
        await h.layer.service.registry.refresh();
        const decision = await h.layer.gate.authorize(h.request("deploy-auditor", resource, token));
        h.clock.offsetMs = 0;
        expect(decision.allow).toBe(false);
        expect(decision.deniedBy).toBe("delegation");
      }),
      { numRuns: 25 },
    );
  });

  it("HS256 never verifies, whatever the secret", async () => {
    const g = await grant(h);
    const [header, payload] = parts(await h.tokenFor(g.id, "deploy-auditor"));
    const pem = createPublicKey({ key: h.layer.service.tokens.jwks().keys[0] as never, format: "jwk" }).export({ type: "spki", format: "pem" });
    await fc.assert(
      fc.asyncProperty(fc.oneof(fc.string(), fc.constant(String(pem))), async (secret) => {
        const input = `${b64({ ...header, alg: "HS256" })}.${b64(payload)}`;
        const decision = await h.layer.gate.authorize(h.request("deploy-auditor", "mcp:k8s/read_logs", `${input}.${createHmac("sha256", secret).update(input).digest("base64url")}`));
        expect(decision.allow).toBe(false);
      }),
      { numRuns: 20 },
    );
  });
  void PROXY_AUDIENCE;
});
