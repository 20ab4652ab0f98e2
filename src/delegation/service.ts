import type { AuditLog } from "../audit/index.js";
import { MandateError, isMandateError } from "../errors/index.js";
import type { AgentRegistry, LockRegistry } from "../identity/index.js";
import { globCovers } from "../policy/index.js";
import type { DelegationLink, Principal, ResolvedDelegation } from "../policy/index.js";
import { DEFAULT_MAX_DEPTH, attenuate } from "./attenuation.js";
import type { AccessPolicy, PrincipalResolver } from "./principals.js";
import { DelegationRegistry, grantStatus, newGrantId } from "./registry.js";
import { validateScope } from "./scope.js";
import type { DelegationTokens } from "./token.js";
import type { Grant, GrantingCaller, NewGrant } from "./types.js";

import { MAX_GRANT_TTL_MS } from "./limits.js";

export { MAX_GRANT_TTL_MS };
const TASK = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export interface DelegationServiceOptions {
  registry: DelegationRegistry;
  tokens: DelegationTokens;
  principals: PrincipalResolver;
  agents: AgentRegistry;
  locks: LockRegistry;
  audit: AuditLog;
  policy: () => AccessPolicy | undefined;
  maxDepth?: number | undefined;
  now?: () => number;
}

/** A delegation verified for one presenter: the resolved chain and the strings audit events carry. */
export interface VerifiedDelegation {
  resolved: ResolvedDelegation;
  summary: { id: string; task: string; delegator: string; chain: string[]; expiresAt: number };
}

export function chainStrings(chain: Grant[]): string[] {
  if (chain.length === 0) return [];
  return [...chain.map((g) => `${g.delegator.kind}:${g.delegator.name}`), `agent:${chain[chain.length - 1]!.agent}`];
}

/**
 * Grants: creation (checked with the policy engine as a `delegate` resource, and for
 * sub-delegations against the parent by attenuation), revocation (cascading to
 * children), visibility, and the resolution of a presented grant into a chain.
 */
export class DelegationService {
  readonly registry: DelegationRegistry;
  readonly tokens: DelegationTokens;
  readonly maxDepth: number;
  private readonly now: () => number;

  constructor(private readonly o: DelegationServiceOptions) {
    this.registry = o.registry;
    this.tokens = o.tokens;
    this.maxDepth = o.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.now = o.now ?? Date.now;
  }

  async create(caller: GrantingCaller, input: NewGrant): Promise<Grant> {
    try {
      const grant = await this.createUnaudited(caller, input);
      await this.o.audit.append({
        type: "delegation.create",
        code: "OK",
        actor: actorOf(caller),
        delegation: { id: grant.id, delegator: `${grant.delegator.kind}:${grant.delegator.name}`, task: grant.task },
        correlation: { task: grant.task },
        target: { agent: grant.agent, delegation: grant.id, ...(grant.parentId ? { parent: grant.parentId } : {}) },
        outcome: { status: "ok" },
        details: { scope: grant.scope, expiresAt: new Date(grant.expiresAt).toISOString(), depth: grant.depth, chain: chainStrings((await this.chainOf(grant)) ?? [grant]) },
      });
      return grant;
    } catch (error) {
      const code = isMandateError(error) ? error.code : "INTERNAL";
      await this.o.audit
        .append({ type: "delegation.create", code, actor: actorOf(caller), ...(input.task ? { correlation: { task: input.task } } : {}), target: { agent: input.agent, ...(input.parentId ? { parent: input.parentId } : {}) }, outcome: { status: "error", error: code, message: (error as Error).message } })
        .catch(() => undefined);
      throw error;
    }
  }

  private async createUnaudited(caller: GrantingCaller, input: NewGrant): Promise<Grant> {
    if (!(Number.isInteger(input.ttlMs) && input.ttlMs > 0 && input.ttlMs <= MAX_GRANT_TTL_MS)) throw new MandateError("INVALID_ARGUMENT", `--ttl must be positive and at most ${MAX_GRANT_TTL_MS / 3600_000} h`);
    const requested = validateScope(input.scope);
    const target = await this.o.agents.get(input.agent);
    const delegator = await this.delegatorOf(caller);
    const t = this.now();
    let parent: Grant | undefined;
    let parentChain: Grant[] | undefined;
    if (input.parentId !== undefined) {
      if (delegator.kind !== "agent") throw new MandateError("INVALID_ARGUMENT", "--parent is for agents sub-delegating a grant they hold; a person delegates from their own access");
      parent = await this.o.registry.get(input.parentId);
      if (parent.agent !== delegator.name) throw new MandateError("PERMISSION_DENIED", `delegation ${parent.id} is held by agent ${parent.agent}, not ${delegator.name}; only its holder can sub-delegate it`);
      parentChain = await this.liveChain(parent, t);
    } else if (delegator.kind === "agent") {
      throw new MandateError("INVALID_ARGUMENT", "an agent delegates only what it was delegated: pass --parent <delegation id> (see `mandate delegations ls`)");
    }
    if (parent && input.task !== undefined && input.task !== parent.task) throw new MandateError("INVALID_ARGUMENT", `a sub-delegation serves its parent's task (${parent.task}); omit --task or pass the same one`);
    const task = parent?.task ?? input.task ?? "";
    if (!TASK.test(task)) throw new MandateError("INVALID_ARGUMENT", `--task ${JSON.stringify(task.slice(0, 80))}: a task id is 1-128 letters, digits and . _ : - (starting with a letter or digit)`);
    if (delegator.kind === "agent" && input.agent === delegator.name) throw new MandateError("INVALID_ARGUMENT", "an agent cannot delegate to itself");
    const expiresAt = t + input.ttlMs;
    const scope = parent ? attenuate({ parent, requested, requestedExpiresAt: expiresAt, covers: globCovers, maxDepth: this.maxDepth }) : requested;

    // May this delegator hand this agent this much time? Asked of the one decision function.
    const policy = this.o.policy();
    if (!policy) throw new MandateError("PERMISSION_DENIED", "no policy engine is configured in this control plane; delegations cannot be checked");
    const decision = policy.authorize({
      principal: delegator,
      ...(parentChain ? { delegation: resolvedOf(parentChain, await this.linksOf(parentChain)) } : {}),
      action: "delegate.create",
      resource: { kind: "delegate", agent: input.agent, ttlMs: input.ttlMs, labels: target.labels },
      now: t,
    });
    if (!decision.allow) {
      throw new MandateError("PERMISSION_DENIED", `${delegator.kind} ${delegator.name} may not delegate to agent ${input.agent} for ${Math.round(input.ttlMs / 60_000)} min: ${decision.reasons[0] ?? "no role allows it"}`, {
        details: { reasons: decision.reasons, deniedBy: decision.deniedBy, policyIds: decision.policyIds },
      });
    }
    const grant: Grant = {
      id: newGrantId(),
      parentId: parent?.id ?? null,
      rootId: parent?.rootId ?? "",
      depth: parent ? parent.depth + 1 : 1,
      task,
      delegator: { kind: delegator.kind, name: delegator.name },
      agent: input.agent,
      scope,
      createdBy: caller.spiffeId,
      createdAt: t,
      expiresAt,
      revokedAt: null,
      revokedBy: null,
      revokeReason: null,
    };
    if (!parent) grant.rootId = grant.id;
    await this.o.registry.insert(grant);
    return grant;
  }

  private async delegatorOf(caller: GrantingCaller): Promise<Principal> {
    if (caller.kind === "admin") return this.o.principals.resolve("user", caller.onBehalfOf);
    return this.o.principals.resolve(caller.kind, caller.name);
  }

  /** Who may see or revoke a grant: admins, and anyone who delegates in its chain or holds it. */
  async mayManage(caller: { kind: string; name?: string | undefined }, grant: Grant): Promise<boolean> {
    if (caller.kind === "admin") return true;
    if (!caller.name) return false;
    const chain = (await this.chainOf(grant)) ?? [grant];
    return chain.some((g) => g.delegator.kind === caller.kind && g.delegator.name === caller.name) || (caller.kind === "agent" && grant.agent === caller.name);
  }

  async revoke(caller: GrantingCaller | { kind: "admin"; spiffeId: string }, id: string, reason: string): Promise<string[]> {
    const grant = await this.o.registry.get(id);
    const who = caller.kind === "admin" ? { kind: "admin" } : { kind: caller.kind, name: caller.name };
    if (!(await this.mayManage(who, grant))) throw new MandateError("PERMISSION_DENIED", `only an admin or a delegator in its chain may revoke delegation ${id}`);
    // An agent holding a grant may not revoke it upward: it may revoke only what it delegated.
    if (caller.kind === "agent" && grant.agent === caller.name && !((await this.chainOf(grant)) ?? []).some((g) => g.delegator.kind === "agent" && g.delegator.name === caller.name)) {
      throw new MandateError("PERMISSION_DENIED", `agent ${caller.name} holds delegation ${id} and cannot revoke it; its delegator can`);
    }
    const revoked = await this.o.registry.revoke(id, caller.spiffeId, reason);
    await this.o.audit.append({
      type: "delegation.revoke",
      code: "OK",
      actor: actorOf(caller as GrantingCaller),
      delegation: { id: grant.id, delegator: `${grant.delegator.kind}:${grant.delegator.name}`, task: grant.task },
      correlation: { task: grant.task },
      target: { delegation: id, agent: grant.agent },
      outcome: { status: "ok" },
      details: { reason, revoked },
    });
    return revoked;
  }

  /** Root first, from the store (listing and management; the request path uses the registry's memory). */
  async chainOf(grant: Grant): Promise<Grant[] | undefined> {
    const chain = [grant];
    let current = grant;
    while (current.parentId !== null) {
      if (chain.length > 64) return undefined;
      current = this.o.registry.cached(current.parentId) ?? (await this.o.registry.get(current.parentId));
      chain.unshift(current);
    }
    return chain;
  }

  /** The chain of a grant, each link live, or the reason it is not usable. */
  private async liveChain(grant: Grant, t: number): Promise<Grant[]> {
    const chain = (await this.chainOf(grant)) ?? [];
    if (chain.length === 0) throw new MandateError("DELEGATION_INVALID", `delegation ${grant.id} has a broken chain`);
    assertLive(chain, t);
    return chain;
  }

  /**
   * The request path: the grant a verified token names, resolved root-first from memory
   * (a cache miss refreshes once: the grant may be a moment old on another control
   * plane), every link live, every delegator and holder unlocked, each delegator's
   * roles from the registries.
   */
  async verifyGrant(grantId: string, presenter: string): Promise<VerifiedDelegation> {
    this.o.registry.assertFresh();
    let chain = this.o.registry.chain(grantId);
    if (!chain) {
      await this.o.registry.refresh(true);
      chain = this.o.registry.chain(grantId);
    }
    if (!chain) throw new MandateError("DELEGATION_INVALID", `delegation ${grantId} does not exist (or its chain is incomplete)`);
    const t = this.now();
    assertLive(chain, t);
    const last = chain[chain.length - 1]!;
    if (last.agent !== presenter) throw new MandateError("DELEGATION_INVALID", `delegation ${grantId} is held by agent ${last.agent}, not ${presenter}`);
    for (const link of chain) {
      const spiffeId = this.o.principals.spiffeIdOf(link.delegator.kind, link.delegator.name);
      const lock = this.o.locks.lockFor({ spiffeId, ...(link.delegator.kind === "agent" ? { agent: link.delegator.name } : {}) });
      if (lock) throw new MandateError("LOCKED", `delegation ${grantId} is unusable: its delegator ${link.delegator.kind} ${link.delegator.name} is locked (${lock.reason})`, { details: { lockId: lock.id } });
    }
    const links = await this.linksOf(chain);
    return {
      resolved: resolvedOf(chain, links),
      summary: { id: last.id, task: last.task, delegator: `${chain[0]!.delegator.kind}:${chain[0]!.delegator.name}`, chain: chainStrings(chain), expiresAt: Math.min(...chain.map((g) => g.expiresAt)) },
    };
  }

  private async linksOf(chain: Grant[]): Promise<DelegationLink[]> {
    return Promise.all(
      chain.map(async (g) => ({ id: g.id, delegator: await this.o.principals.resolve(g.delegator.kind, g.delegator.name), delegate: g.agent, scope: g.scope, expiresAt: g.expiresAt })),
    );
  }

  status(grant: Grant): ReturnType<typeof grantStatus> {
    return grantStatus(grant, this.now());
  }
}

function resolvedOf(chain: Grant[], links: DelegationLink[]): ResolvedDelegation {
  const last = chain[chain.length - 1]!;
  return { id: last.id, task: last.task, chain: links, expiresAt: Math.min(...chain.map((g) => g.expiresAt)), revoked: chain.some((g) => g.revokedAt !== null) };
}

function assertLive(chain: Grant[], t: number): void {
  for (const link of chain) {
    const which = link === chain[chain.length - 1] ? `delegation ${link.id}` : `delegation ${chain[chain.length - 1]!.id} (through its parent ${link.id})`;
    if (link.revokedAt !== null) throw new MandateError("DELEGATION_REVOKED", `${which} was revoked at ${new Date(link.revokedAt).toISOString()}${link.revokeReason ? ` (${link.revokeReason})` : ""}`);
    if (link.expiresAt <= t) throw new MandateError("DELEGATION_EXPIRED", `${which} expired at ${new Date(link.expiresAt).toISOString()}`);
  }
}

export function actorOf(caller: GrantingCaller): { kind: "user" | "agent" | "admin"; spiffeId: string; user?: string; agent?: string } {
  if (caller.kind === "user") return { kind: "user", spiffeId: caller.spiffeId, user: caller.name };
  if (caller.kind === "agent") return { kind: "agent", spiffeId: caller.spiffeId, agent: caller.name };
  return { kind: "admin", spiffeId: caller.spiffeId };
}
