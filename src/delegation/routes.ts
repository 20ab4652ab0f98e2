import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import type { AuditLog } from "../audit/index.js";
import { MandateError, isMandateError } from "../errors/index.js";
import type { Caller } from "../identity/index.js";
import { defaultAction, parseResourceString, resourceString } from "../policy/index.js";
import type { AccessResource, Principal } from "../policy/index.js";
import type { CallerAuthenticator } from "../server/authenticate.js";
import { parseRequest } from "../server/validate.js";
import { type AccessRequests, MAX_APPROVAL_WINDOW_MS } from "./approvals.js";
import type { AccessPolicy, PrincipalResolver } from "./principals.js";
import { MAX_GRANT_TTL_MS, type DelegationService, type VerifiedDelegation, chainStrings } from "./service.js";
import type { AccessRequestRecord, Grant, GrantingCaller } from "./types.js";

export interface DelegationRouteDeps {
  delegations: DelegationService;
  requests: AccessRequests;
  principals: PrincipalResolver;
  auth: CallerAuthenticator;
  audit: AuditLog;
  policy: () => AccessPolicy | undefined;
  now: () => number;
}

const Pattern = z.string().min(1).max(512);
const CreateBody = z.strictObject({
  agent: z.string().min(1).max(64),
  task: z.string().min(1).max(128).optional(),
  ttlSeconds: z.number().int().positive().max(MAX_GRANT_TTL_MS / 1000),
  allow: z.array(Pattern).max(64),
  deny: z.array(Pattern).max(64).default([]),
  requireApproval: z.array(Pattern).max(64).default([]),
  maxSpendUsd: z.number().nonnegative().max(1_000_000).optional(),
  parent: z.string().min(1).max(64).optional(),
  /** admins only: whose access the grant is made from */
  onBehalfOf: z.string().min(1).max(64).optional(),
});
const ListQuery = z.strictObject({ agent: z.string().max(64).optional(), task: z.string().max(128).optional(), status: z.enum(["active", "expired", "revoked"]).optional() });
const IdParam = z.strictObject({ id: z.string().min(1).max(64) });
const RevokeBody = z.strictObject({ reason: z.string().min(1).max(1024).default("revoked") });
const CheckBody = z.strictObject({
  agent: z.string().min(1).max(64).optional(),
  user: z.string().min(1).max(64).optional(),
  delegation: z.string().min(1).max(64).optional(),
  resource: z.string().min(1).max(2048),
  action: z.string().min(1).max(128).optional(),
  args: z.record(z.string(), z.unknown()).optional(),
  labels: z.record(z.string(), z.string()).optional(),
});
const RequestsQuery = z.strictObject({ status: z.enum(["pending", "approved", "denied", "consumed", "expired"]).optional(), task: z.string().max(128).optional() });
const ApproveBody = z.strictObject({ reason: z.string().max(1024).optional(), mode: z.enum(["once", "window"]).default("once"), forSeconds: z.number().int().positive().max(MAX_APPROVAL_WINDOW_MS / 1000).optional() });
const DenyBody = z.strictObject({ reason: z.string().min(1).max(1024) });

function grantingCaller(caller: Caller, onBehalfOf: string | undefined): GrantingCaller {
  if (caller.kind === "user" && caller.user) {
    if (onBehalfOf !== undefined && onBehalfOf !== caller.user) throw new MandateError("PERMISSION_DENIED", "only an admin may delegate on behalf of someone else");
    return { kind: "user", name: caller.user, spiffeId: caller.spiffeId };
  }
  if (caller.kind === "agent" && caller.agent) {
    if (onBehalfOf !== undefined) throw new MandateError("PERMISSION_DENIED", "only an admin may delegate on behalf of someone else");
    return { kind: "agent", name: caller.agent, spiffeId: caller.spiffeId };
  }
  if (caller.kind === "admin") {
    if (!onBehalfOf) throw new MandateError("INVALID_ARGUMENT", "an admin delegates on behalf of a user: pass --as-user <name> (the grant is limited to that person's access)");
    return { kind: "admin", spiffeId: caller.spiffeId, onBehalfOf };
  }
  throw new MandateError("PERMISSION_DENIED", `${caller.spiffeId} cannot delegate; log in as a person (\`mandate login\`) or use an agent's credentials`);
}

function who(caller: Caller): { kind: string; name?: string | undefined } {
  return { kind: caller.kind, name: caller.kind === "user" ? caller.user : caller.agent };
}

export function grantView(grant: Grant, status: string, chain?: string[]): Record<string, unknown> {
  return {
    id: grant.id,
    status,
    task: grant.task,
    agent: grant.agent,
    delegator: `${grant.delegator.kind}:${grant.delegator.name}`,
    parent: grant.parentId,
    depth: grant.depth,
    scope: grant.scope,
    createdBy: grant.createdBy,
    createdAt: new Date(grant.createdAt).toISOString(),
    expiresAt: new Date(grant.expiresAt).toISOString(),
    ...(grant.revokedAt !== null ? { revokedAt: new Date(grant.revokedAt).toISOString(), revokedBy: grant.revokedBy, revokeReason: grant.revokeReason } : {}),
    ...(chain ? { chain } : {}),
  };
}

export function requestView(r: AccessRequestRecord): Record<string, unknown> {
  const iso = (v: number | null) => (v === null ? null : new Date(v).toISOString());
  return {
    id: r.id,
    status: r.status,
    requester: `${r.requester.kind}:${r.requester.name}`,
    delegation: r.delegationId,
    task: r.task,
    action: r.action,
    resource: r.resource,
    argsHash: r.argsHash,
    rule: r.rule,
    createdAt: iso(r.createdAt),
    expiresAt: iso(r.expiresAt),
    decidedAt: iso(r.decidedAt),
    decidedBy: r.decidedBy,
    reason: r.decisionReason,
    mode: r.mode,
    validUntil: iso(r.validUntil),
    uses: r.uses,
  };
}

/** Grants, the access check tool and access requests. Callers authenticate with mTLS: admins, people (user certificates) and agents. */
export function registerDelegationRoutes(app: FastifyInstance, d: DelegationRouteDeps): void {
  app.post("/v1/delegations", async (request) => {
    const caller = await d.auth.authenticate(request, "delegation.create");
    const body = parseRequest(CreateBody, request.body);
    const grant = await d.delegations.create(grantingCaller(caller, body.onBehalfOf), {
      agent: body.agent,
      task: body.task,
      ttlMs: body.ttlSeconds * 1000,
      scope: { allow: body.allow, deny: body.deny, requireApproval: body.requireApproval, ...(body.maxSpendUsd !== undefined ? { maxSpendUsd: body.maxSpendUsd } : {}) },
      parentId: body.parent,
    });
    const chain = await d.delegations.chainOf(grant);
    return { delegation: grantView(grant, d.delegations.status(grant), chain ? chainStrings(chain) : undefined) };
  });

  app.get("/v1/delegations", async (request) => {
    const caller = await d.auth.authenticate(request, "delegation.list");
    const query = parseRequest(ListQuery, request.query, "query");
    const grants = await d.delegations.registry.list(query);
    const visible: Grant[] = [];
    for (const g of grants) if (await d.delegations.mayManage(who(caller), g)) visible.push(g);
    return { delegations: visible.map((g) => grantView(g, d.delegations.status(g))) };
  });

  app.get("/v1/delegations/:id", async (request) => {
    const caller = await d.auth.authenticate(request, "delegation.show");
    const { id } = parseRequest(IdParam, request.params, "path");
    const grant = await d.delegations.registry.get(id);
    if (!(await d.delegations.mayManage(who(caller), grant))) throw new MandateError("NOT_FOUND", `no delegation with id ${id}; see \`mandate delegations ls\``);
    const chain = await d.delegations.chainOf(grant);
    const children = (await d.delegations.registry.list({})).filter((g) => g.parentId === grant.id).map((g) => g.id);
    return { delegation: { ...grantView(grant, d.delegations.status(grant), chain ? chainStrings(chain) : undefined), children } };
  });

  app.post("/v1/delegations/:id/revoke", async (request) => {
    const caller = await d.auth.authenticate(request, "delegation.revoke");
    const { id } = parseRequest(IdParam, request.params, "path");
    const body = parseRequest(RevokeBody, request.body);
    const actor = caller.kind === "admin" ? { kind: "admin" as const, spiffeId: caller.spiffeId } : grantingCaller(caller, undefined);
    const revoked = await d.delegations.revoke(actor, id, body.reason);
    return { revoked };
  });

  app.post("/v1/access/check", async (request) => {
    const caller = await d.auth.authenticate(request, "access.check");
    if (caller.kind !== "admin" && caller.kind !== "user") throw new MandateError("PERMISSION_DENIED", "the access check is for admins and people (log in with `mandate login`)");
    const body = parseRequest(CheckBody, request.body);
    return checkAccess(d, body);
  });

  app.get("/v1/access/requests", async (request) => {
    const caller = await d.auth.authenticate(request, "access_request.list");
    const query = parseRequest(RequestsQuery, request.query, "query");
    const all = await d.requests.list(query);
    const visible: AccessRequestRecord[] = [];
    for (const r of all) if (await mayView(d, caller, r)) visible.push(r);
    return { requests: visible.map(requestView) };
  });

  app.get("/v1/access/requests/:id", async (request) => {
    const caller = await d.auth.authenticate(request, "access_request.show");
    const { id } = parseRequest(IdParam, request.params, "path");
    const record = await d.requests.get(id);
    if (!(await mayView(d, caller, record))) {
      throw new MandateError("NOT_FOUND", `no access request with id ${id}; see \`mandate requests ls\``);
    }
    return { request: requestView(record) };
  });

  app.post("/v1/access/requests/:id/approve", async (request) => {
    const { id } = parseRequest(IdParam, request.params, "path");
    const body = parseRequest(ApproveBody, request.body);
    if (body.mode === "window" && !body.forSeconds) throw new MandateError("INVALID_ARGUMENT", "a time-boxed approval needs its length (--for 15m)");
    return decide(d, request, id, { approve: true, reason: body.reason ?? null, mode: body.mode, windowMs: body.forSeconds ? body.forSeconds * 1000 : undefined });
  });

  app.post("/v1/access/requests/:id/deny", async (request) => {
    const { id } = parseRequest(IdParam, request.params, "path");
    const body = parseRequest(DenyBody, request.body);
    return decide(d, request, id, { approve: false, reason: body.reason, mode: "once" });
  });
}

/**
 * Who sees an access request: admins; the agent that asked; a person who may approve it
 * or who delegates in the chain it was asked under.
 */
async function mayView(d: DelegationRouteDeps, caller: Caller, record: AccessRequestRecord): Promise<boolean> {
  if (caller.kind === "admin") return true;
  if (caller.kind === "agent") return record.requester.kind === "agent" && record.requester.name === caller.agent;
  if (caller.kind !== "user" || !caller.user) return false;
  if (record.requester.kind === "user" && record.requester.name === caller.user) return true;
  const person = await d.principals.resolve("user", caller.user).catch(() => undefined);
  if (person && d.policy()?.mayApprove?.(person, record.resource)) return true;
  if (!record.delegationId) return false;
  const grant = d.delegations.registry.cached(record.delegationId);
  return grant !== undefined && (await d.delegations.mayManage({ kind: "user", name: caller.user }, grant));
}

async function checkAccess(d: DelegationRouteDeps, body: z.infer<typeof CheckBody>): Promise<Record<string, unknown>> {
  if ((body.agent === undefined) === (body.user === undefined)) throw new MandateError("INVALID_ARGUMENT", "name exactly one principal: --agent <name> or --user <name>");
  let resource: AccessResource;
  try {
    resource = parseResourceString(body.resource);
  } catch (error) {
    throw new MandateError("INVALID_ARGUMENT", (error as Error).message);
  }
  if (body.labels) resource = { ...resource, labels: body.labels };
  const principal: Principal = body.agent ? await d.principals.resolve("agent", body.agent) : await d.principals.resolve("user", body.user!);
  const action = body.action ?? defaultAction(resource);
  const base = { principal: { kind: principal.kind, name: principal.name, roles: principal.roles }, action, resource: resourceString(resource) };
  let delegation: VerifiedDelegation | undefined;
  if (body.delegation) {
    if (principal.kind !== "agent") throw new MandateError("INVALID_ARGUMENT", "--delegation goes with --agent: delegations are held by agents");
    try {
      delegation = await d.delegations.verifyGrant(body.delegation, principal.name);
    } catch (error) {
      return { ...base, allow: false, reasons: [`denied: ${(error as Error).message}`], obligations: [], policyIds: [], deniedBy: "delegation" };
    }
  }
  const policy = d.policy();
  if (!policy) throw new MandateError("PERMISSION_DENIED", "no policy engine is configured in this control plane");
  const decision = policy.authorize({ principal, ...(delegation ? { delegation: delegation.resolved } : {}), action, resource, ...(body.args ? { context: { args: body.args } } : {}), now: d.now() });
  return { ...base, ...decision, ...(delegation ? { delegation: delegation.summary } : {}) };
}

async function decide(d: DelegationRouteDeps, request: FastifyRequest, id: string, input: { approve: boolean; reason: string | null; mode: "once" | "window"; windowMs?: number | undefined }): Promise<Record<string, unknown>> {
  const type = input.approve ? "access_request.approve" : "access_request.deny";
  const caller = await d.auth.authenticate(request, type);
  try {
    if (caller.kind !== "user" || !caller.user) throw new MandateError("PERMISSION_DENIED", "access requests are decided by people: log in with `mandate login` and run `mandate requests approve` as yourself");
    const record = await d.requests.get(id);
    if (record.requester.kind === "user" && record.requester.name === caller.user) throw new MandateError("PERMISSION_DENIED", `${caller.user} made access request ${id} and cannot decide it; another approver must`);
    const approver = await d.principals.resolve("user", caller.user);
    const policy = d.policy();
    if (!policy?.mayApprove?.(approver, record.resource)) throw new MandateError("PERMISSION_DENIED", `user ${caller.user} has no role that may approve ${record.resource}`);
    let notAfter = Number.MAX_SAFE_INTEGER;
    if (record.delegationId) {
      const grant = d.delegations.registry.cached(record.delegationId) ?? (await d.delegations.registry.get(record.delegationId));
      notAfter = grant.expiresAt;
    }
    const decided = await d.requests.decide(id, { approve: input.approve, by: `user:${caller.user}`, reason: input.reason, mode: input.mode, windowMs: input.windowMs, notAfter });
    await d.audit.append({
      type,
      code: "OK",
      actor: { kind: "user", user: caller.user, spiffeId: caller.spiffeId },
      ...(decided.task ? { correlation: { task: decided.task } } : {}),
      target: { accessRequest: id, resource: decided.resource, requester: `${decided.requester.kind}:${decided.requester.name}`, ...(decided.delegationId ? { delegation: decided.delegationId } : {}) },
      outcome: { status: "ok" },
      details: { mode: decided.mode, validUntil: decided.validUntil === null ? null : new Date(decided.validUntil).toISOString(), reason: input.reason },
    });
    return { request: requestView(decided) };
  } catch (error) {
    const code = isMandateError(error) ? error.code : "INTERNAL";
    await d.audit
      .append({ type, code, actor: { kind: caller.kind === "user" ? "user" : caller.kind === "admin" ? "admin" : "agent", spiffeId: caller.spiffeId, ...(caller.user ? { user: caller.user } : {}) }, target: { accessRequest: id }, outcome: { status: "error", error: code, message: (error as Error).message } })
      .catch(() => undefined);
    throw error;
  }
}
