import { createHash } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { isMandateError } from "../errors/index.js";
import type { ServerContext } from "../server/context.js";
import { parseRequest } from "../server/validate.js";
import { MAX_APPLY_BYTES } from "./role-document.js";

const ApplyBody = z.strictObject({ yaml: z.string().max(MAX_APPLY_BYTES), origin: z.string().max(256).optional() });
const NameParam = z.strictObject({ name: z.string().min(1).max(64) });
const Pattern = z.string().min(1).max(1024);
const AddEntryBody = z.strictObject({ pattern: Pattern, effect: z.enum(["allow", "deny"]).default("allow"), reason: z.string().max(1024).optional() });
const RemoveEntryQuery = z.strictObject({ pattern: Pattern, effect: z.enum(["allow", "deny"]).default("allow") });
const SetListBody = z.strictObject({ allow: z.array(Pattern).max(1000), deny: z.array(Pattern).max(1000) });

/** Roles and the runtime allow-list. Every route requires the admin identity; every change is audited. */
export function registerPolicyRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const policy = () => {
    if (!ctx.policy) throw new Error("the policy engine is not configured");
    return ctx.policy;
  };

  app.post("/v1/roles", { bodyLimit: MAX_APPLY_BYTES + 64 * 1024 }, async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const body = parseRequest(ApplyBody, request.body);
    try {
      const { result, roles } = await policy().registry.apply(body.yaml, caller.spiffeId, body.origin);
      await ctx.audit.append({
        type: "role.apply",
        code: "OK",
        actor: { kind: "admin", spiffeId: caller.spiffeId },
        target: { roles: roles.map((r) => r.document.name) },
        outcome: { status: "ok" },
        // what exactly was applied, verifiable against `mandate roles show NAME | sha256sum`
        details: { ...result, revision: policy().revision(), sha256: Object.fromEntries(roles.map((r) => [r.document.name, createHash("sha256").update(r.source).digest("hex")])) },
      });
      return { ...result, revision: policy().revision() };
    } catch (error) {
      if (isMandateError(error)) {
        await ctx.audit.append({ type: "role.apply", code: error.code, actor: { kind: "admin", spiffeId: caller.spiffeId }, outcome: { status: "error", error: error.code, message: error.message } });
      }
      throw error;
    }
  });

  app.get("/v1/roles", async (request) => {
    await ctx.auth.requireAdmin(request);
    const roles = await policy().registry.list();
    const broken = policy().registry.problems();
    return { roles: roles.map(({ source: _source, ...role }) => ({ ...role, ...(broken.has(role.name) ? { problem: broken.get(role.name) } : {}) })), revision: policy().revision() };
  });

  app.get("/v1/roles/:name", async (request) => {
    await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    return { role: await policy().registry.get(name) };
  });

  app.delete("/v1/roles/:name", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    const role = await policy().registry.remove(name);
    await ctx.audit.append({ type: "role.remove", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { role: name }, outcome: { status: "ok" }, details: { revision: policy().revision() } });
    return { role: { name: role.name }, revision: policy().revision() };
  });

  const listBody = async () => {
    const entries = await policy().registry.runtimeList();
    const allow = entries.filter((e) => e.effect === "allow");
    return { entries, effective: { allow: allow.length === 0 ? ["**"] : allow.map((e) => e.pattern), deny: entries.filter((e) => e.effect === "deny").map((e) => e.pattern) }, revision: policy().revision() };
  };

  app.get("/v1/allowlist", async (request) => {
    await ctx.auth.requireAdmin(request);
    return listBody();
  });

  app.post("/v1/allowlist", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const body = parseRequest(AddEntryBody, request.body);
    const entry = await policy().registry.addRuntimeEntry({ ...body, by: caller.spiffeId });
    await ctx.audit.append({ type: "allowlist.add", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { pattern: body.pattern, effect: body.effect }, outcome: { status: "ok" }, details: { reason: body.reason } });
    return { entry, ...(await listBody()) };
  });

  app.delete("/v1/allowlist", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const query = parseRequest(RemoveEntryQuery, request.query, "query");
    await policy().registry.removeRuntimeEntry(query.effect, query.pattern);
    await ctx.audit.append({ type: "allowlist.remove", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { pattern: query.pattern, effect: query.effect }, outcome: { status: "ok" } });
    return listBody();
  });

  app.put("/v1/allowlist", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const body = parseRequest(SetListBody, request.body);
    await policy().registry.setRuntimeList(body, caller.spiffeId);
    await ctx.audit.append({ type: "allowlist.set", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: {}, outcome: { status: "ok" }, details: body });
    return listBody();
  });
}
