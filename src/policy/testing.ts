import { defaultAction } from "./resources.js";
import type { AccessRequest, AccessResource, AgentPrincipal, DelegationLink, DelegationScope, Labels, Principal, ResolvedDelegation, StatementClass, UserPrincipal } from "./types.js";

/** Small builders for access requests, shared by the policy tests, the bench and the gate's tests. */

export const T0 = Date.UTC(2026, 0, 15, 10, 30);

export function agent(name: string, roles: string[], labels: Labels = {}): AgentPrincipal {
  return { kind: "agent", name, spiffeId: `spiffe://test.example/agent/${name}`, roles, labels };
}

export function user(name: string, roles: string[], labels: Labels = {}): UserPrincipal {
  return { kind: "user", name, roles, labels };
}

export const mcp = (server: string, name: string, labels?: Labels, item: "tool" | "prompt" | "resource" | "client" = "tool"): AccessResource => ({ kind: "mcp", server, item, name, ...(labels ? { labels } : {}) });
export const llm = (model: string, provider?: string): AccessResource => ({ kind: "llm", model, ...(provider ? { provider } : {}) });
export const db = (database: string, dbUser: string, ...statements: StatementClass[]): AccessResource => ({ kind: "db", database, dbUser, statements, tables: [], functions: [] });
export const delegateTo = (agentName: string, ttlMs: number, labels?: Labels): AccessResource => ({ kind: "delegate", agent: agentName, ttlMs, ...(labels ? { labels } : {}) });

export function scope(allow: string[], deny: string[] = [], requireApproval: string[] = [], maxSpendUsd?: number): DelegationScope {
  return { allow, deny, requireApproval, ...(maxSpendUsd !== undefined ? { maxSpendUsd } : {}) };
}

export function link(id: string, delegator: Principal, delegate: string, s: DelegationScope, expiresAt = T0 + 30 * 60_000): DelegationLink {
  return { id, delegator, delegate, scope: s, expiresAt };
}

export function delegation(id: string, chain: DelegationLink[], options: { revoked?: boolean; expiresAt?: number; task?: string } = {}): ResolvedDelegation {
  return { id, task: options.task ?? "investigate-checkout-deploy", chain, expiresAt: options.expiresAt ?? Math.min(...chain.map((l) => l.expiresAt)), revoked: options.revoked ?? false };
}

export function accessRequest(principal: Principal, resource: AccessResource, extra: Partial<AccessRequest> = {}): AccessRequest {
  return { principal, resource, action: defaultAction(resource), now: T0, ...extra };
}
