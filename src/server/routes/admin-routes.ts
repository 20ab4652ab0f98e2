import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { MAX_SEARCH_LIMIT, proveConsistency, proveInclusion, traceAudit, verifyAuditChain } from "../../audit/index.js";
import { MandateError } from "../../errors/index.js";
import type { ServerContext } from "../context.js";
import { parseRequest } from "../validate.js";

const NameParam = z.strictObject({ name: z.string().min(1).max(64) });
const IdParam = z.strictObject({ id: z.string().min(1).max(64) });
const CreateAgentBody = z.strictObject({
  name: z.string().min(1).max(64),
  roles: z.array(z.string()).max(64).default([]),
  labels: z.record(z.string(), z.string()).default({}),
  selectors: z.array(z.string().min(1).max(4096)).max(16).default([]),
  tokenTtlSeconds: z.number().int().positive().max(7 * 24 * 3600).optional(),
});
const UpdateAgentBody = z.strictObject({ selectors: z.array(z.string().min(1).max(4096)).max(16) });
const TokenBody = z.strictObject({ ttlSeconds: z.number().int().positive().max(7 * 24 * 3600).optional() });
const LockBody = z.strictObject({
  target: z.strictObject({ kind: z.enum(["agent", "serial", "instance", "spiffe_id"]), value: z.string().min(1).max(2048) }),
  reason: z.string().min(1).max(1024),
  ttlSeconds: z.number().int().positive().optional(),
});
const RotateBody = z.strictObject({ phase: z.enum(["prepare", "activate"]).default("prepare"), force: z.boolean().default(false) });
const AuditQuery = z.strictObject({
  type: z.string().max(128).optional(),
  agent: z.string().max(128).optional(),
  user: z.string().max(256).optional(),
  task: z.string().max(256).optional(),
  decision: z.enum(["allow", "deny"]).optional(),
  since: z.coerce.number().int().nonnegative().optional(),
  until: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().positive().max(MAX_SEARCH_LIMIT).optional(),
});

/** Administration: agents, tokens, locks, the CA. Every route requires the admin identity. */
export function registerAdminRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post("/v1/agents", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const body = parseRequest(CreateAgentBody, request.body);
    const existingLock = ctx.locks.lockFor({ spiffeId: `spiffe://${ctx.authority.trustDomain}/agent/${body.name}`, agent: body.name });
    if (existingLock) {
      throw new MandateError("LOCKED", `agent name ${body.name} is locked until ${existingLock.expiresAt ?? "removed"} (${existingLock.reason}); remove the lock with \`mandate locks rm ${existingLock.id}\` to reuse the name now`);
    }
    const agent = await ctx.agents.create({ name: body.name, roles: body.roles, labels: body.labels, selectors: body.selectors, createdBy: caller.spiffeId });
    await ctx.audit.append({ type: "agent.create", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { agent: agent.name, spiffeId: agent.spiffeId }, outcome: { status: "ok" }, details: { roles: agent.roles, labels: agent.labels, selectors: agent.selectors } });
    const ttlMs = (body.tokenTtlSeconds ?? ctx.settings.joinTokenTtlMs / 1000) * 1000;
    const token = await ctx.joins.createToken(agent.name, ttlMs, caller.spiffeId);
    return { agent, token: token.token, expiresAt: token.expiresAt.toISOString(), caPin: ctx.authority.caPin, authServer: ctx.settings.publicUrl };
  });

  app.get("/v1/agents", async (request) => {
    await ctx.auth.requireAdmin(request);
    return { agents: await ctx.agents.list() };
  });

  app.get("/v1/agents/:name", async (request) => {
    await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    const agent = await ctx.agents.get(name);
    return { agent, instances: await ctx.agents.instances(name), locks: (await ctx.locks.list()).filter((l) => l.target.kind === "agent" && l.target.value === name) };
  });

  app.patch("/v1/agents/:name", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    const body = parseRequest(UpdateAgentBody, request.body);
    const before = await ctx.agents.get(name);
    const agent = await ctx.agents.setSelectors(name, body.selectors);
    await ctx.audit.append({ type: "agent.update", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { agent: agent.name, spiffeId: agent.spiffeId }, outcome: { status: "ok" }, details: { selectors: agent.selectors, previousSelectors: before.selectors } });
    return { agent };
  });

  app.post("/v1/agents/:name/tokens", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    const body = parseRequest(TokenBody, request.body);
    const token = await ctx.joins.createToken(name, (body.ttlSeconds ?? ctx.settings.joinTokenTtlMs / 1000) * 1000, caller.spiffeId);
    return { agent: name, token: token.token, expiresAt: token.expiresAt.toISOString(), caPin: ctx.authority.caPin, authServer: ctx.settings.publicUrl };
  });

  app.delete("/v1/agents/:name", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    const agent = await ctx.agents.get(name);
    // Lock before deleting: live SVIDs and JWT-SVIDs die at once, and the lock lapses when the last of them would have expired.
    const last = await ctx.store.db.selectFrom("issued_svids").select((eb) => eb.fn.max("not_after").as("last")).where("agent_name", "=", name).executeTakeFirst();
    const until = Math.max(Number(last?.last ?? 0), ctx.now() + ctx.settings.jwtMaxTtlMs) + 60_000;
    const lock = await ctx.locks.add({ kind: "agent", value: name, reason: "agent removed", createdBy: caller.spiffeId, ttlMs: until - ctx.now() });
    await ctx.agents.remove(name);
    await ctx.audit.append({ type: "agent.delete", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { agent: name, spiffeId: agent.spiffeId }, outcome: { status: "ok" }, details: { lockId: lock.id } });
    return { agent, lock };
  });

  app.post("/v1/locks", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const body = parseRequest(LockBody, request.body);
    const lock = await ctx.locks.add({ kind: body.target.kind, value: body.target.value, reason: body.reason, createdBy: caller.spiffeId, ttlMs: body.ttlSeconds ? body.ttlSeconds * 1000 : undefined });
    await ctx.audit.append({ type: "lock.create", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { lock: lock.id, ...lock.target }, outcome: { status: "ok" }, details: { reason: lock.reason, expiresAt: lock.expiresAt } });
    return { lock };
  });

  app.get("/v1/locks", async (request) => {
    await ctx.auth.requireAdmin(request);
    return { locks: await ctx.locks.list() };
  });

  app.delete("/v1/locks/:id", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { id } = parseRequest(IdParam, request.params, "path");
    const lock = await ctx.locks.remove(id);
    await ctx.audit.append({ type: "lock.delete", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { lock: lock.id, ...lock.target }, outcome: { status: "ok" } });
    return { lock };
  });

  app.get("/v1/ca", async (request) => {
    await ctx.auth.requireAdmin(request);
    return ctx.authority.describe();
  });

  app.post("/v1/ca/rotate", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const body = parseRequest(RotateBody, request.body);
    const result = body.phase === "prepare" ? await ctx.authority.prepareRotation() : await ctx.authority.activateRotation({ force: body.force });
    await ctx.audit.append({ type: `ca.rotate.${body.phase}`, code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: result, outcome: { status: "ok" } });
    return { phase: body.phase, ...result, ca: ctx.authority.describe() };
  });

  app.get("/v1/audit/events", async (request) => {
    await ctx.auth.requireAdmin(request);
    const query = parseRequest(AuditQuery, request.query, "query");
    const { since, until, ...rest } = query;
    return { events: await ctx.audit.list({ ...rest, since: since === undefined ? undefined : new Date(since), until: until === undefined ? undefined : new Date(until) }) };
  });

  app.post("/v1/audit/hash", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { value } = parseRequest(z.strictObject({ value: z.string().max(1024 * 1024) }), request.body);
    const hash = await ctx.audit.hashForInvestigation(value);
    // The investigation itself is evidence, but the candidate value is not written down.
    await ctx.audit.append({ type: "audit.hash", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, outcome: { status: "ok" } });
    return { hash };
  });

  app.get("/v1/audit/trace/:subject", async (request) => {
    await ctx.auth.requireAdmin(request);
    const { subject } = parseRequest(z.strictObject({ subject: z.string().min(1).max(256) }), request.params, "path");
    const trace = await traceAudit(ctx.store, subject);
    // Model requests keep their (redacted) prompt and response beside the log, under their own retention.
    const ids: string[] = [];
    const collect = (nodes: typeof trace.roots) => nodes.forEach((n) => (ids.push(n.event.id), collect(n.children)));
    collect(trace.roots);
    const transcripts = ctx.llm ? await ctx.llm.recorder.transcriptsFor(ids) : new Map();
    if (transcripts.size) trace.attachments = Object.fromEntries([...transcripts].map(([id, t]) => [id, { prompt: t.prompt, response: t.response }]));
    return trace;
  });

  app.get("/v1/audit/verify", async (request) => {
    await ctx.auth.requireAdmin(request);
    return verifyAuditChain(ctx.store, ctx.checkpointer ? { verifierKey: ctx.checkpointer.verifierKey } : {});
  });

  app.get("/v1/audit/checkpoints", async (request) => {
    await ctx.auth.requireAdmin(request);
    const rows = await ctx.store.db.selectFrom("audit_checkpoints").selectAll().orderBy("tree_size").execute();
    return {
      verifierKey: ctx.checkpointer?.verifierKey,
      checkpoints: rows.map((r) => ({ treeSize: Number(r.tree_size), rootHash: r.root_hash, createdAt: new Date(Number(r.created_at)).toISOString(), note: r.note })),
    };
  });

  app.post("/v1/audit/checkpoints", async (request) => {
    await ctx.auth.requireAdmin(request);
    const note = await ctx.checkpointer?.checkpointIfDue(true);
    return { note: note ?? null };
  });

  app.get("/v1/audit/prove/:seq", async (request) => {
    await ctx.auth.requireAdmin(request);
    const { seq } = parseRequest(z.strictObject({ seq: z.coerce.number().int().positive() }), request.params, "path");
    return proveInclusion(ctx.store, seq);
  });

  app.get("/v1/audit/consistency", async (request) => {
    await ctx.auth.requireAdmin(request);
    const q = parseRequest(z.strictObject({ old: z.coerce.number().int().positive(), new: z.coerce.number().int().positive() }), request.query, "query");
    return proveConsistency(ctx.store, q.old, q.new);
  });
}
