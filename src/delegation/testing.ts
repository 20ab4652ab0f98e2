import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StoreAuditLog } from "../audit/index.js";
import { AgentRegistry, LockRegistry, TrustDomainAuthority } from "../identity/index.js";
import { createPolicyEngine } from "../policy/create.js";
import type { AuthenticatedCaller, GateRequest } from "../policy/index.js";
import { CallerAuthenticator } from "../server/authenticate.js";
import { Store } from "../store/index.js";
import { type DelegationLayer, startDelegationLayer } from "./layer.js";
import type { UserDirectory } from "./principals.js";

export const TRUST_DOMAIN = "example.test";
export const PROXY_AUDIENCE = `spiffe://${TRUST_DOMAIN}/mandate/server`;

/** Roles for the reference scenario and the gate tests: Alice is an SRE who may approve k8s actions; agents may use the k8s server and gpt-4.1 models. */
export const GATE_ROLES = `
kind: role
name: sre
allow:
  mcp:
    - servers: ["**"]
  llm:
    - models: ["**"]
  delegate:
    - agents: ["deploy-*", "log-reader", "intruder"]
      max_ttl: 1h
approve: ["mcp:k8s/*", "llm:*"]
---
kind: role
name: reader
allow:
  mcp:
    - servers: [k8s]
      tools: ["read_*"]
  delegate:
    - agents: ["deploy-*"]
      max_ttl: 1h
---
kind: role
name: viewer
allow:
  mcp:
    - servers: [k8s]
      tools: ["read_*"]
---
kind: role
name: k8s-agent
allow:
  mcp:
    - servers: [k8s]
  llm:
    - models: ["gpt-4.1*"]
  delegate:
    - agents: ["log-reader", "deploy-*", "intruder"]
      max_ttl: 1h
---
kind: role
name: payments-lead
allow:
  delegate:
    - labels: "team=payments"
      max_ttl: 10m
`;

/** A delegation layer over a temporary SQLite store, a controllable clock and fixed roles (unit tests). */
export interface GateHarness {
  layer: DelegationLayer;
  store: Store;
  locks: LockRegistry;
  audit: StoreAuditLog;
  authority: TrustDomainAuthority;
  clock: { offsetMs: number };
  /** the user registry's contents (tests may disable someone) */
  people: Record<string, { name: string; roles: string[]; labels: Record<string, string>; disabled: boolean }>;
  now: () => number;
  caller(agent: string): AuthenticatedCaller;
  request(agent: string, resource: string, token?: string, args?: Record<string, unknown>): GateRequest;
  tokenFor(grantId: string, agent: string): Promise<string>;
  close(): Promise<void>;
}

export async function startGateHarness(): Promise<GateHarness> {
  const dir = await mkdtemp(join(tmpdir(), "mandate-gate-"));
  const clock = { offsetMs: 0 };
  const now = () => Date.now() + clock.offsetMs;
  const store = await Store.open({ dataDir: dir });
  const { authority } = await TrustDomainAuthority.open(store, TRUST_DOMAIN, { now });
  const audit = new StoreAuditLog(store);
  const locks = new LockRegistry(store, now);
  const agents = new AgentRegistry(store, TRUST_DOMAIN, now);
  for (const name of ["deploy-auditor", "log-reader", "intruder", "deploy-helper"]) await agents.create({ name, roles: ["k8s-agent"], labels: {}, createdBy: "test" });
  await agents.create({ name: "pay-bot", roles: ["k8s-agent"], labels: { team: "payments" }, createdBy: "test" });
  await agents.create({ name: "ops-bot", roles: ["k8s-agent"], labels: { team: "ops" }, createdBy: "test" });
  const people: Record<string, { name: string; roles: string[]; labels: Record<string, string>; disabled: boolean }> = {
    alice: { name: "alice", roles: ["sre"], labels: {}, disabled: false },
    carol: { name: "carol", roles: ["reader"], labels: {}, disabled: false },
    dave: { name: "dave", roles: [], labels: {}, disabled: false },
    erin: { name: "erin", roles: ["payments-lead"], labels: {}, disabled: false },
  };
  const users: UserDirectory = { get: async (name) => people[name] };
  const policy = createPolicyEngine({ roles: GATE_ROLES, now });
  const layer = await startDelegationLayer({ store, authority, agents, locks, audit, auth: new CallerAuthenticator(authority, locks, audit, now), policy: () => policy, users: () => users, audiences: () => [PROXY_AUDIENCE], pollIntervalMs: 60_000, now });
  const caller = (agent: string): AuthenticatedCaller => ({ kind: "agent", spiffeId: `spiffe://${TRUST_DOMAIN}/agent/${agent}`, agent, via: "mtls", notAfter: new Date(now() + 3600_000) });
  return {
    layer,
    store,
    locks,
    audit,
    authority,
    clock,
    people,
    now,
    caller,
    request(agent, resource, token, args) {
      const [server, name] = resource.replace(/^mcp:/, "").split("/") as [string, string];
      const isLlm = resource.startsWith("llm:");
      return {
        caller: caller(agent),
        delegationToken: token,
        action: isLlm ? "llm.chat" : "mcp.tools/call",
        resource: isLlm ? { kind: "llm", model: resource.slice(4) } : { kind: "mcp", server, item: "tool", name },
        ...(args ? { context: { args } } : {}),
      };
    },
    async tokenFor(grantId, agent) {
      const verified = await layer.service.verifyGrant(grantId, agent);
      const grant = layer.service.registry.cached(grantId)!;
      const ids = verified.resolved.chain.map((l) => layer.principals.spiffeIdOf(l.delegator.kind, l.delegator.name));
      return (await layer.service.tokens.issue({ grant, agentSpiffeId: `spiffe://${TRUST_DOMAIN}/agent/${agent}`, delegatorSpiffeIds: ids, audience: [PROXY_AUDIENCE] })).token;
    },
    async close() {
      layer.stop();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
