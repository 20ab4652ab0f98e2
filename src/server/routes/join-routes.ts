import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { MandateError } from "../../errors/index.js";
import type { ServerContext } from "../context.js";
import { parseRequest } from "../validate.js";

const CreateRuleBody = z.strictObject({
  method: z.enum(["kubernetes", "github", "oidc"]),
  agent: z.string().min(1).max(64),
  issuer: z.string().min(1).max(1024).optional(),
  audience: z.string().min(1).max(512),
  jwks: z.strictObject({ keys: z.array(z.record(z.string(), z.unknown())).min(1).max(64) }).optional(),
  jwksUrl: z.string().min(1).max(2048).optional(),
  // An empty list is refused by the registry, with a message saying why a rule needs a condition.
  allow: z.array(z.record(z.string().max(128), z.string().max(512))).max(32).default([]),
});
const IdParam = z.strictObject({ id: z.string().min(1).max(64) });

function rules(ctx: ServerContext) {
  if (!ctx.joinRules) throw new MandateError("CONFIG_INVALID", "this control plane has no join rules");
  return ctx.joinRules;
}

/** Join rules for token-less joins (`mandate joins`). Every route requires the admin identity. */
export function registerJoinRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post("/v1/join-rules", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const body = parseRequest(CreateRuleBody, request.body);
    const rule = await rules(ctx).create({ ...body, createdBy: caller.spiffeId });
    await ctx.audit.append({
      type: "join_rule.create",
      code: "OK",
      actor: { kind: "admin", spiffeId: caller.spiffeId },
      target: { rule: rule.id, agent: rule.agent },
      outcome: { status: "ok" },
      details: { method: rule.method, issuer: rule.issuer, audience: rule.audience, allow: rule.allow, keys: rule.jwks ? "inline" : (rule.jwksUrl ?? "discovery") },
    });
    return { rule, caPin: ctx.authority.caPin, authServer: ctx.settings.publicUrl };
  });

  app.get("/v1/join-rules", async (request) => {
    await ctx.auth.requireAdmin(request);
    return { rules: await rules(ctx).list(), caPin: ctx.authority.caPin, authServer: ctx.settings.publicUrl };
  });

  app.delete("/v1/join-rules/:id", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { id } = parseRequest(IdParam, request.params, "path");
    const rule = await rules(ctx).remove(id);
    await ctx.audit.append({ type: "join_rule.delete", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { rule: rule.id, agent: rule.agent }, outcome: { status: "ok" } });
    return { rule };
  });
}
