import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { MandateError } from "../errors/index.js";
import type { ServerContext } from "../server/context.js";
import { toMandateError } from "../server/errors.js";
import { parseRequest } from "../server/validate.js";
import { ModelConfig, ProviderConfig } from "./config.js";
import { REVISION_META } from "./registry.js";
import type { LlmService } from "./service.js";
import type { Endpoint, WireFormat } from "./types.js";
import { errorBody } from "./wire/index.js";

const PROXY_ROUTES: [string, Endpoint][] = [
  ["/llm/v1/chat/completions", "chat"],
  ["/llm/v1/responses", "responses"],
  ["/llm/v1/embeddings", "embeddings"],
  ["/llm/anthropic/v1/messages", "messages"],
];

const UsageQuery = z.strictObject({
  by: z.enum(["team", "agent", "model", "delegation"]).default("model"),
  since: z.coerce.number().int().nonnegative().optional(),
});
const NameParam = z.strictObject({ name: z.string().min(1).max(128) });

function formatOf(request: FastifyRequest): WireFormat {
  return request.url.startsWith("/llm/anthropic/") ? "anthropic" : "openai";
}

/**
 * The LLM proxy on the control plane's HTTPS listener (OpenAI paths under /llm/v1,
 * Anthropic's under /llm/anthropic/v1) and its admin API under /v1/llm. The proxy
 * routes take the raw body (up to `maxBodyBytes`, not the API's 64 KiB) and answer
 * every error, framework ones included, in the caller's wire format.
 */
export function registerLlmRoutes(app: FastifyInstance, ctx: ServerContext, llm: LlmService): void {
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: llm.config.maxBodyBytes }, (_request, body, done) => done(null, body));
    scope.setErrorHandler((error, request, reply) => {
      const e = toMandateError(error);
      void reply.status(e.httpStatus).header("x-should-retry", "false").send(errorBody(formatOf(request), e));
    });
    for (const [path, endpoint] of PROXY_ROUTES) {
      scope.post(path, (request: FastifyRequest, reply: FastifyReply) => llm.proxy.handle(endpoint, request, reply));
    }
    scope.get("/llm/v1/models", async (request, reply) => {
      const credentials = await ctx.workloadAuth.authenticate(request, "llm.models");
      const data = [];
      for (const model of llm.registry.models()) {
        if (model.targets[0]!.provider.format !== "openai") continue;
        const decision = await llm.gate.authorize({ caller: credentials.caller, delegationToken: credentials.delegationToken, action: "llm.chat", resource: { kind: "llm", model: model.name, provider: model.targets[0]!.provider.name }, context: { listing: true } });
        if (decision.allow) data.push({ id: model.name, object: "model", created: 0, owned_by: model.targets[0]!.provider.name });
      }
      return reply.send({ object: "list", data });
    });
  });

  app.get("/v1/llm/providers", async (request) => {
    await ctx.auth.requireAdmin(request);
    return { providers: llm.registry.providers() };
  });
  app.post("/v1/llm/providers", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const provider = parseRequest(ProviderConfig, request.body);
    if (llm.registry.inConfig("provider", provider.name)) throw new MandateError("ALREADY_EXISTS", `provider ${provider.name} is defined in the LLM configuration file; change it there`);
    llm.registry.validate("provider", provider);
    await saveDefinition(ctx, "llm_providers", provider.name, provider, caller.spiffeId);
    await llm.registry.pollOnce();
    await ctx.audit.append({ type: "llm.provider.create", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { provider: provider.name, type: provider.type }, outcome: { status: "ok" }, details: { baseUrl: provider.baseUrl, apiKeyEnv: provider.apiKeyEnv, apiKeySecret: provider.apiKeySecret } });
    return { provider: llm.registry.providers().find((p) => p.name === provider.name) };
  });
  app.delete("/v1/llm/providers/:name", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    if (llm.registry.inConfig("provider", name)) throw new MandateError("INVALID_ARGUMENT", `provider ${name} is defined in the LLM configuration file; remove it there`);
    const users = llm.registry.models().filter((m) => m.targets.some((t) => t.provider.name === name));
    if (users.length) throw new MandateError("INVALID_ARGUMENT", `provider ${name} is used by model(s) ${users.map((m) => m.name).join(", ")}; remove them first`);
    await deleteDefinition(ctx, "llm_providers", name, "provider");
    await llm.registry.pollOnce();
    await ctx.audit.append({ type: "llm.provider.delete", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { provider: name }, outcome: { status: "ok" } });
    return { removed: name };
  });

  app.get("/v1/llm/models", async (request) => {
    await ctx.auth.requireAdmin(request);
    return {
      models: llm.registry.models().map((m) => ({ name: m.name, strategy: m.strategy, source: m.source, retries: m.retries, targets: m.targets.map((t) => ({ provider: t.provider.name, upstreamModel: t.upstreamModel, weight: t.weight })) })),
    };
  });
  app.post("/v1/llm/models", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const model = parseRequest(ModelConfig, request.body);
    if (llm.registry.inConfig("model", model.name)) throw new MandateError("ALREADY_EXISTS", `model ${model.name} is defined in the LLM configuration file; change it there`);
    llm.registry.validate("model", model);
    await saveDefinition(ctx, "llm_models", model.name, model, caller.spiffeId);
    await llm.registry.pollOnce();
    await ctx.audit.append({ type: "llm.model.create", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { model: model.name }, outcome: { status: "ok" }, details: { definition: model } });
    return { model: llm.registry.model(model.name) ? { name: model.name } : null };
  });
  app.delete("/v1/llm/models/:name", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    if (llm.registry.inConfig("model", name)) throw new MandateError("INVALID_ARGUMENT", `model ${name} is defined in the LLM configuration file; remove it there`);
    await deleteDefinition(ctx, "llm_models", name, "model");
    await llm.registry.pollOnce();
    await ctx.audit.append({ type: "llm.model.delete", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { model: name }, outcome: { status: "ok" } });
    return { removed: name };
  });

  app.get("/v1/llm/usage", async (request) => {
    await ctx.auth.requireAdmin(request);
    const query = parseRequest(UsageQuery, request.query, "query");
    const since = query.since ?? ctx.now() - 30 * 86_400_000;
    await llm.recorder.flush();
    return { by: query.by, since: new Date(since).toISOString(), rows: await llm.recorder.report(query.by, since) };
  });
}

async function saveDefinition(ctx: ServerContext, table: "llm_providers" | "llm_models", name: string, definition: unknown, by: string): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    const exists = await tx.selectFrom(table).select("name").where("name", "=", name).executeTakeFirst();
    if (exists) throw new MandateError("ALREADY_EXISTS", `${table === "llm_providers" ? "provider" : "model"} ${name} already exists; remove it first to change it`);
    await tx.insertInto(table).values({ name, definition: JSON.stringify(definition), created_at: ctx.now(), created_by: by }).execute();
    await bumpRevision(tx);
  });
}

async function deleteDefinition(ctx: ServerContext, table: "llm_providers" | "llm_models", name: string, what: string): Promise<void> {
  await ctx.store.transaction(async (tx) => {
    const result = await tx.deleteFrom(table).where("name", "=", name).executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) throw new MandateError("NOT_FOUND", `no ${what} ${name} was added with \`mandate llm ${what}s add\``);
    await bumpRevision(tx);
  });
}

async function bumpRevision(tx: Parameters<Parameters<ServerContext["store"]["transaction"]>[0]>[0]): Promise<void> {
  const revision = `${Date.now()}-${Math.random().toString(36).slice(2)}`;
  await tx.insertInto("meta").values({ key: REVISION_META, value: revision }).onConflict((oc) => oc.column("key").doUpdateSet({ value: revision })).execute();
}
