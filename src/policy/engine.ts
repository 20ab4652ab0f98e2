import { type CedarRequest, cedarRequest, evaluateCondition } from "./cedar.js";
import { type CompiledRole, type CompiledRule, ruleMatches } from "./compile.js";
import { cachedGlob, type Glob, globMatches } from "./glob.js";
import type { PolicyEngine } from "./gate.js";
import type { Effect } from "./role-document.js";
import { MAX_RESOURCE_LENGTH, resourceString, resourceStrings } from "./resources.js";
import type { AccessRequest, Decision, DecisionLayer, DelegationLink, Obligation, Principal, StatementClass } from "./types.js";

/**
 * The decision function. Effective access is the intersection
 *
 *   runtime allow-list ∩ delegation scope (every link) ∩ principal's roles ∩ every delegator's roles
 *
 * evaluated over an immutable compiled snapshot, synchronously, with no I/O. Any layer
 * can refuse and a refusal is final (deny wins). A layer refuses when one of its deny
 * rules matches or when none of its allow rules does. When every layer allows but one of
 * them requires approval (a role's `require_approval` or a scope's `requireApproval`),
 * the decision is `allow: false, deniedBy: "approval"` with an `approval_required`
 * obligation naming the rule; the gate turns that into an access request.
 */

export interface RuntimeList {
  /** deployment-wide resource globs; empty means everything is allowed */
  allow: string[];
  /** the emergency deny list, checked before everything else */
  deny: string[];
}

export interface PolicySnapshot {
  revision: string;
  roles: ReadonlyMap<string, CompiledRole>;
  runtime: { allow: Glob[]; deny: Glob[] };
}

/** Where the engine gets its current snapshot; `stale()` returns why it must not be trusted. */
export interface SnapshotSource {
  snapshot(): PolicySnapshot;
  stale?(now: number): string | undefined;
}

export function compileRuntimeList(list: RuntimeList): PolicySnapshot["runtime"] {
  return { allow: list.allow.map(cachedGlob), deny: list.deny.map(cachedGlob) };
}

export function staticSnapshot(roles: CompiledRole[], runtime: RuntimeList = { allow: [], deny: [] }, revision = "static"): PolicySnapshot {
  return { revision, roles: new Map(roles.map((r) => [r.name, r])), runtime: compileRuntimeList(runtime) };
}

interface Refusal {
  layer: DecisionLayer;
  reason: string;
  policyIds: string[];
}

interface Approval {
  rule: string;
  policyId: string;
  reason: string;
}

/** Per-decision scratch state: the lazily built Cedar request and what was found. */
class Evaluation {
  readonly policyIds: string[] = [];
  readonly reasons: string[] = [];
  readonly approvals: Approval[] = [];
  readonly obligations: Obligation[] = [];
  /** Cedar requests built so far, by the parts they carry */
  private cedar: CedarRequest[] = [];

  constructor(
    readonly request: AccessRequest,
    readonly subject: string,
    readonly units: { string: string; statement: StatementClass | undefined }[],
    readonly now: number,
  ) {}

  /** true, false, or "error" (evaluation failed; the caller fails closed for its effect) */
  condition(rule: CompiledRule): boolean | "error" {
    if (!rule.condition) return true;
    const needs = rule.condition.needs;
    const request = (this.cedar[needs] ??= cedarRequest(this.request, this.subject, this.now, needs));
    return evaluateCondition(rule.condition, request);
  }
}

const principalName = (p: Principal) => `${p.kind} ${p.name}`;
const where = (rule: CompiledRule) => `${rule.ref}, line ${rule.line}`;

function matchAny(globs: Glob[], subject: string): Glob | undefined {
  for (const g of globs) if (globMatches(g, subject)) return g;
  return undefined;
}

function delegateMatchesPrincipal(delegate: string, principal: Principal): boolean {
  return delegate === principal.name || delegate === `${principal.kind}:${principal.name}` || (principal.kind === "agent" && delegate === principal.spiffeId);
}

export class CompiledPolicyEngine implements PolicyEngine {
  constructor(
    private readonly source: SnapshotSource,
    private readonly clock: () => number = Date.now,
  ) {}

  authorize(request: AccessRequest): Decision {
    const now = request.now ?? this.clock();
    let units: Evaluation["units"];
    let subject: string;
    try {
      subject = resourceString(request.resource);
      const strings = resourceStrings(request.resource);
      const classes = request.resource.kind === "db" ? [...new Set(request.resource.statements)] : [];
      units = strings.map((s, i) => ({ string: s, statement: classes[i] }));
    } catch (error) {
      return deny({ layer: "input", reason: `denied: ${(error as Error).message}`, policyIds: [] });
    }
    if (!request.principal || (request.principal.kind !== "agent" && request.principal.kind !== "user") || !Array.isArray(request.principal.roles)) {
      return deny({ layer: "input", reason: "denied: the request names no valid principal", policyIds: [] });
    }
    // freshness is judged on the engine's clock, never on a time the request supplies
    const stale = this.source.stale?.(this.clock());
    if (stale) return deny({ layer: "runtime", reason: `denied: ${stale}`, policyIds: [] });
    const snapshot = this.source.snapshot();
    const evaluation = new Evaluation(request, subject, units, now);
    let refusal: Refusal | undefined;
    try {
      refusal =
        checkDelegationLive(request, now) ??
        checkRuntime(snapshot, evaluation) ??
        checkScopes(evaluation) ??
        checkRoles(snapshot, evaluation, request.principal, "agent_roles") ??
        checkDelegatorRoles(snapshot, evaluation);
    } catch (error) {
      // A malformed request (a chain link without a scope, a delegator without roles) is a refusal, never an exception.
      return deny({ layer: "input", reason: `denied: the request could not be evaluated (${(error as Error).message})`, policyIds: [] });
    }
    if (refusal) return deny(refusal, evaluation);
    if (evaluation.approvals.length > 0) {
      return {
        allow: false,
        reasons: [...evaluation.approvals.map((a) => a.reason), ...evaluation.reasons],
        obligations: [...evaluation.approvals.map((a): Obligation => ({ kind: "approval_required", rule: a.rule, policyId: a.policyId })), ...evaluation.obligations],
        policyIds: [...evaluation.policyIds, ...evaluation.approvals.map((a) => a.policyId)],
        deniedBy: "approval",
      };
    }
    return { allow: true, reasons: evaluation.reasons, obligations: evaluation.obligations, policyIds: evaluation.policyIds };
  }

  /** Whether `principal` holds a role whose `approve` globs cover the canonical resource string. */
  mayApprove(principal: Principal, resource: string): boolean {
    if (typeof resource !== "string" || resource.length > MAX_RESOURCE_LENGTH || !Array.isArray(principal?.roles)) return false;
    const { roles } = this.source.snapshot();
    for (const name of principal.roles) {
      const role = roles.get(name);
      if (role && matchAny(role.approve, resource)) return true;
    }
    return false;
  }
}

function deny(refusal: Refusal, evaluation?: Evaluation): Decision {
  return {
    allow: false,
    reasons: [refusal.reason],
    obligations: [],
    policyIds: [...(evaluation?.policyIds ?? []), ...refusal.policyIds],
    deniedBy: refusal.layer,
  };
}

function checkDelegationLive(request: AccessRequest, now: number): Refusal | undefined {
  const d = request.delegation;
  if (!d) return undefined;
  const id = `delegation:${d.id}`;
  if (d.revoked) return { layer: "delegation", reason: `denied: delegation ${d.id} is revoked`, policyIds: [id] };
  if (!(now < d.expiresAt)) return { layer: "delegation", reason: `denied: delegation ${d.id} expired at ${isoOrRaw(d.expiresAt)}`, policyIds: [id] };
  if (!Array.isArray(d.chain) || d.chain.length === 0) return { layer: "input", reason: `denied: delegation ${d.id} has no chain`, policyIds: [id] };
  for (const link of d.chain) {
    if (!(now < link.expiresAt)) return { layer: "delegation", reason: `denied: delegation ${link.id} (in the chain of ${d.id}) expired at ${isoOrRaw(link.expiresAt)}`, policyIds: [`delegation:${link.id}`] };
  }
  const last = d.chain[d.chain.length - 1]!;
  if (!delegateMatchesPrincipal(last.delegate, request.principal)) {
    return { layer: "delegation", reason: `denied: delegation ${d.id} was granted to ${last.delegate}, not ${principalName(request.principal)}`, policyIds: [id] };
  }
  return undefined;
}

function isoOrRaw(ms: number): string {
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? String(ms) : d.toISOString();
}

function checkRuntime(snapshot: PolicySnapshot, e: Evaluation): Refusal | undefined {
  const { allow, deny: blocked } = snapshot.runtime;
  for (const unit of e.units) {
    const hit = matchAny(blocked, unit.string);
    if (hit) return { layer: "runtime", reason: `denied: the runtime deny list blocks ${unit.string} (${hit.source})`, policyIds: [`runtime:deny:${hit.source}`] };
    if (allow.length > 0) {
      const ok = matchAny(allow, unit.string);
      if (!ok) return { layer: "runtime", reason: `denied: the runtime allow-list does not allow ${unit.string}`, policyIds: [] };
      e.policyIds.push(`runtime:allow:${ok.source}`);
    }
  }
  return undefined;
}

function checkScopes(e: Evaluation): Refusal | undefined {
  const d = e.request.delegation;
  if (!d) return undefined;
  for (const link of d.chain) {
    const refusal = checkScope(link, e);
    if (refusal) return refusal;
  }
  return undefined;
}

interface CompiledScope {
  allow: Glob[];
  deny: Glob[];
  requireApproval: Glob[];
}

/** Scopes are compiled once per scope object (the delegation layer keeps its resolved grants in memory). */
const compiledScopes = new WeakMap<DelegationLink["scope"], CompiledScope>();

/** Scope patterns come from verified grants; one that does not compile fails closed: it allows nothing and denies (or demands approval for) everything. */
function compileScopePatterns(patterns: string[], whenInvalid: "all" | "none"): Glob[] {
  const out: Glob[] = [];
  for (const pattern of Array.isArray(patterns) ? patterns : []) {
    try {
      out.push(cachedGlob(pattern));
    } catch {
      if (whenInvalid === "all") out.push(cachedGlob("**"));
    }
  }
  return out;
}

function compiledScope(scope: DelegationLink["scope"]): CompiledScope {
  let compiled = compiledScopes.get(scope);
  if (!compiled) {
    compiled = { allow: compileScopePatterns(scope.allow, "none"), deny: compileScopePatterns(scope.deny, "all"), requireApproval: compileScopePatterns(scope.requireApproval, "all") };
    compiledScopes.set(scope, compiled);
  }
  return compiled;
}

function checkScope(link: DelegationLink, e: Evaluation): Refusal | undefined {
  const scope = compiledScope(link.scope);
  for (const unit of e.units) {
    const denied = matchAny(scope.deny, unit.string);
    if (denied) return { layer: "delegation", reason: `denied: delegation ${link.id} denies ${unit.string} (${denied.source})`, policyIds: [`delegation:${link.id}/deny:${denied.source}`] };
    const allowed = matchAny(scope.allow, unit.string);
    if (allowed === undefined) return { layer: "delegation", reason: `denied: delegation ${link.id} does not allow ${unit.string}`, policyIds: [`delegation:${link.id}`] };
    e.policyIds.push(`delegation:${link.id}/allow:${allowed.source}`);
    const approval = matchAny(scope.requireApproval, unit.string);
    if (approval !== undefined) {
      const rule = `delegation:${link.id}/require_approval:${approval.source}`;
      e.approvals.push({ rule, policyId: rule, reason: `approval required: delegation ${link.id} requires approval for ${unit.string} (${approval.source})` });
    }
  }
  if (link.scope.maxSpendUsd !== undefined && e.request.resource.kind === "llm") e.obligations.push({ kind: "max_spend", usd: link.scope.maxSpendUsd, delegationId: link.id });
  e.reasons.push(`allowed: delegation ${link.id} allows ${e.subject}`);
  return undefined;
}

function rolesOf(snapshot: PolicySnapshot, principal: Principal): CompiledRole[] {
  const out: CompiledRole[] = [];
  for (const name of principal.roles) {
    const role = snapshot.roles.get(name);
    if (role) out.push(role);
  }
  return out;
}

function rulesFor(roles: CompiledRole[], effect: Effect, e: Evaluation): CompiledRule[] {
  if (roles.length === 1) return roles[0]!.rules[effect][e.request.resource.kind];
  const out: CompiledRule[] = [];
  for (const role of roles) for (const rule of role.rules[effect][e.request.resource.kind]) out.push(rule);
  return out;
}

function checkRoles(snapshot: PolicySnapshot, e: Evaluation, principal: Principal, layer: DecisionLayer): Refusal | undefined {
  const roles = rolesOf(snapshot, principal);
  const who = principalName(principal);
  const denies = rulesFor(roles, "deny", e);
  const allows = rulesFor(roles, "allow", e);
  const approvals = rulesFor(roles, "require_approval", e);
  const { action, resource } = e.request;
  for (const unit of e.units) {
    for (const rule of denies) {
      // a deny whose condition cannot be evaluated still denies
      if (ruleMatches(rule, action, resource, unit.statement) && e.condition(rule) !== false) {
        return { layer, reason: `denied: role ${rule.role} of ${who} denies ${unit.string} (${where(rule)})`, policyIds: [rule.id] };
      }
    }
    let allowedBy: CompiledRule | undefined;
    let conditionFailed: CompiledRule | undefined;
    const note: { ttlExceeded?: CompiledRule } = {};
    for (const rule of allows) {
      if (!ruleMatches(rule, action, resource, unit.statement, note)) continue;
      if (e.condition(rule) === true) {
        allowedBy = rule;
        break;
      }
      conditionFailed ??= rule;
    }
    if (!allowedBy) {
      let reason = roles.length === 0 ? `denied: ${who} has no role that allows ${unit.string}` : `denied: no role of ${who} allows ${unit.string}`;
      if (conditionFailed) reason += ` (role ${conditionFailed.role} allows it only when its conditions hold: ${where(conditionFailed)})`;
      else if (note.ttlExceeded && resource.kind === "delegate") {
        reason += ` for ${Math.round(resource.ttlMs / 1000)}s (role ${note.ttlExceeded.role} allows at most ${Math.round(note.ttlExceeded.maxTtlMs! / 1000)}s: ${where(note.ttlExceeded)})`;
      }
      return { layer, reason, policyIds: conditionFailed ? [conditionFailed.id] : [] };
    }
    e.policyIds.push(allowedBy.condition ? `${allowedBy.id}#cedar` : allowedBy.id);
    e.reasons.push(`allowed: role ${allowedBy.role} of ${who} allows ${unit.string} (${where(allowedBy)})`);
    for (const rule of approvals) {
      if (ruleMatches(rule, action, resource, unit.statement) && e.condition(rule) !== false) {
        e.approvals.push({ rule: rule.id, policyId: rule.id, reason: `approval required: role ${rule.role} of ${who} requires approval for ${unit.string} (${where(rule)})` });
        break;
      }
    }
  }
  return undefined;
}

function checkDelegatorRoles(snapshot: PolicySnapshot, e: Evaluation): Refusal | undefined {
  const d = e.request.delegation;
  if (!d) return undefined;
  const seen = new Set<string>([`${e.request.principal.kind}:${e.request.principal.name}`]);
  for (const link of d.chain) {
    const key = `${link.delegator.kind}:${link.delegator.name}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const refusal = checkRoles(snapshot, e, link.delegator, "delegator_roles");
    if (refusal) return refusal;
  }
  return undefined;
}

