import type { AuditLog } from "../audit/index.js";
import { isMandateError } from "../errors/index.js";
import { resourceString } from "../policy/index.js";
import type { AccessGate, Decision, DecisionLayer, GateDecision, GateRequest, Obligation, Principal } from "../policy/index.js";
import { type AccessRequests, argumentsHash } from "./approvals.js";
import type { AccessPolicy, PrincipalResolver } from "./principals.js";
import type { DelegationService, VerifiedDelegation } from "./service.js";
import type { ActClaim, DelegationClaims } from "./token.js";

export interface AccessGateOptions {
  delegations: DelegationService;
  principals: PrincipalResolver;
  requests: AccessRequests;
  audit: AuditLog;
  policy: () => AccessPolicy | undefined;
  /** audiences a delegation token may name: this trust domain's proxies */
  audiences: () => string[];
  now?: () => number;
}

/**
 * The access gate every proxy calls: principal from the registries, the delegation token
 * verified against the caller and resolved into a live chain, one decision from the
 * policy engine, and approvals turned into (or satisfied by) access requests. Anything
 * that cannot be established is a deny naming the layer, never an exception.
 */
export function createAccessGate(o: AccessGateOptions): AccessGate {
  const now = o.now ?? Date.now;
  return {
    async authorize(request: GateRequest): Promise<GateDecision> {
      const caller = request.caller;
      const fallback: Principal = { kind: "agent", name: caller.agent ?? caller.user ?? caller.spiffeId, spiffeId: caller.spiffeId, roles: [], labels: {} };
      let principal: Principal;
      try {
        if (caller.kind === "agent" && caller.agent) principal = await o.principals.resolve("agent", caller.agent);
        else if (caller.kind === "user" && caller.user) principal = await o.principals.resolve("user", caller.user);
        else return deny(fallback, "input", `denied: ${caller.spiffeId} is a ${caller.kind} identity; only agents and people are authorized through the proxies`);
      } catch (error) {
        return deny(fallback, "input", `denied: ${(error as Error).message}`);
      }

      let delegation: VerifiedDelegation | undefined;
      if (request.delegationToken !== undefined) {
        let claims: DelegationClaims | undefined;
        try {
          claims = await o.delegations.tokens.verify(request.delegationToken, o.audiences());
          if (claims.sub !== caller.spiffeId) {
            return deny(principal, "delegation", `denied: the delegation token was issued to ${claims.sub} but presented by ${caller.spiffeId}; a delegation token is usable only by its subject`);
          }
          if (principal.kind !== "agent") return deny(principal, "delegation", "denied: delegation tokens are held by agents");
          delegation = await o.delegations.verifyGrant(claims.jti, principal.name);
        } catch (error) {
          const layer: DecisionLayer = isMandateError(error) && error.code === "LOCKED" ? "lock" : "delegation";
          // A genuine token for a grant that is no longer live (revoked, expired, delegator locked):
          // the refusal still names the grant and task, so the task's trace shows the attempt.
          const named = claims && claims.sub === caller.spiffeId ? summaryFromClaims(claims) : undefined;
          return { ...deny(principal, layer, `denied: ${(error as Error).message}`), ...(named ? { delegation: named } : {}) };
        }
      }

      const policy = o.policy();
      if (!policy) return deny(principal, "input", "denied: no policy engine is configured in this control plane", delegation);
      let decision: Decision;
      try {
        decision = policy.authorize({ principal, ...(delegation ? { delegation: delegation.resolved } : {}), action: request.action, resource: request.resource, ...(request.context ? { context: request.context } : {}), now: now() });
      } catch (error) {
        return deny(principal, "input", `denied: ${(error as Error).message}`, delegation);
      }
      const obligations = withSpendCeiling(decision.obligations, delegation);
      const base: GateDecision = { ...decision, obligations, principal, ...(delegation ? { delegation: delegation.summary } : {}) };
      const approval = decision.obligations.find((ob): ob is Extract<Obligation, { kind: "approval_required" }> => ob.kind === "approval_required");
      if (decision.allow || decision.deniedBy !== "approval" || !approval) return base;
      // Listing is not using: an item that needs approval stays visible, so the agent can ask for it.
      if (request.action.endsWith("/list") || request.context?.listing === true) {
        return { ...base, allow: true, deniedBy: undefined, reasons: [`allowed to list: each use needs approval (${approval.rule})`, ...base.reasons] };
      }
      return approvalStep(o, base, approval, request, principal, delegation, now);
    },
  };
}

async function approvalStep(
  o: AccessGateOptions,
  base: GateDecision,
  approval: Extract<Obligation, { kind: "approval_required" }>,
  request: GateRequest,
  principal: Principal,
  delegation: VerifiedDelegation | undefined,
  now: () => number,
): Promise<GateDecision> {
  // An approval covers one call exactly: a tool's arguments, a database statement's (redacted) text.
  const args = request.resource.kind === "mcp" && request.context && "args" in request.context ? request.context.args : request.resource.kind === "db" ? request.context?.statement : undefined;
  const key = {
    requester: { kind: principal.kind, name: principal.name },
    delegationId: delegation?.summary.id ?? null,
    task: delegation?.summary.task ?? null,
    action: request.action,
    resource: resourceString(request.resource),
    argsHash: argumentsHash(args),
  };
  const approved = await o.requests.consumeApproval(key);
  if (approved) {
    const how = approved.mode === "window" ? `until ${new Date(approved.validUntil!).toISOString()}` : "for this one call";
    await o.audit.append({
      type: "access_request.use",
      code: "OK",
      actor: { kind: principal.kind, ...(principal.kind === "agent" ? { agent: principal.name, spiffeId: principal.spiffeId } : { user: principal.name }) },
      ...(delegation ? { delegation: { id: delegation.summary.id, delegator: delegation.summary.delegator, task: delegation.summary.task } } : {}),
      ...(key.task ? { correlation: { task: key.task } } : {}),
      target: { accessRequest: approved.id, resource: key.resource },
      outcome: { status: "ok" },
      details: { mode: approved.mode, uses: approved.uses },
    });
    return {
      ...base,
      allow: true,
      deniedBy: undefined,
      reasons: [`allowed: access request ${approved.id} approved by ${approved.decidedBy} ${how}`, ...base.reasons],
      // The approval obligation stays on the allow, so no proxy caches a decision that spent an approval.
      accessRequest: { id: approved.id, status: "approved" },
    };
  }
  const refused = await o.requests.recentDenial(key);
  if (refused) {
    return { ...base, reasons: [`denied: access request ${refused.id} for this call was denied by ${refused.decidedBy}${refused.decisionReason ? ` (${refused.decisionReason})` : ""}`, ...base.reasons], accessRequest: { id: refused.id, status: "denied" } };
  }
  const { record, created } = await o.requests.pending(key, approval.rule, delegation?.summary.expiresAt ?? Number.MAX_SAFE_INTEGER);
  if (created) {
    await o.audit.append({
      type: "access_request.create",
      code: "APPROVAL_REQUIRED",
      actor: { kind: principal.kind, ...(principal.kind === "agent" ? { agent: principal.name, spiffeId: principal.spiffeId } : { user: principal.name }) },
      ...(delegation ? { delegation: { id: delegation.summary.id, delegator: delegation.summary.delegator, task: delegation.summary.task, chain: delegation.summary.chain } } : {}),
      ...(key.task ? { correlation: { task: key.task } } : {}),
      target: { accessRequest: record.id, resource: key.resource, action: key.action },
      decision: { allow: false, reasons: base.reasons, ...(base.policyIds.length ? { policy: base.policyIds.join(",") } : {}) },
      outcome: { status: "ok", message: `access request ${record.id} is pending` },
      details: { rule: approval.rule, argsHash: key.argsHash, expiresAt: new Date(record.expiresAt).toISOString() },
    });
  }
  return { ...base, reasons: [`denied: approval required (${approval.rule}); access request ${record.id} is pending — approve with \`mandate requests approve ${record.id}\``, ...base.reasons], accessRequest: { id: record.id, status: "pending" } };
}

/**
 * Every link's spend ceiling rides as an obligation (tightest first), and the LLM proxy
 * charges each one, so siblings sub-delegated from one grant share their parent's ceiling.
 */
function withSpendCeiling(obligations: Obligation[], delegation: VerifiedDelegation | undefined): Obligation[] {
  if (!delegation) return obligations;
  const ceilings = new Map<string, number>();
  const note = (delegationId: string, usd: number) => ceilings.set(delegationId, Math.min(usd, ceilings.get(delegationId) ?? Infinity));
  for (const link of delegation.resolved.chain) if (link.scope.maxSpendUsd !== undefined) note(link.id, link.scope.maxSpendUsd);
  for (const ob of obligations) if (ob.kind === "max_spend") note(ob.delegationId, ob.usd);
  const spend: Obligation[] = [...ceilings].sort((x, y) => x[1] - y[1]).map(([delegationId, usd]) => ({ kind: "max_spend", usd, delegationId }));
  return [...obligations.filter((ob) => ob.kind !== "max_spend"), ...spend];
}

function deny(principal: Principal, layer: DecisionLayer, reason: string, delegation?: VerifiedDelegation): GateDecision {
  return { allow: false, reasons: [reason], obligations: [], policyIds: [], deniedBy: layer, principal, ...(delegation ? { delegation: delegation.summary } : {}) };
}

/** The grant a verified token names, from its own claims (root delegator innermost in `act`). */
function summaryFromClaims(claims: DelegationClaims): NonNullable<GateDecision["delegation"]> {
  const actors: string[] = [];
  for (let act: ActClaim | undefined = claims.act; act; act = act.act) actors.unshift(principalString(act.sub));
  const chain = [...actors, principalString(claims.sub)];
  return { id: claims.jti, task: claims.task_id, delegator: chain[0]!, chain, expiresAt: claims.exp * 1000 };
}

function principalString(spiffeId: string): string {
  const match = /^spiffe:\/\/[^/]+\/(user|agent)\/([^/]+)/.exec(spiffeId);
  return match ? `${match[1]}:${match[2]}` : spiffeId;
}
