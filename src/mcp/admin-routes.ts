import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ServerContext } from "../server/context.js";
import { parseRequest } from "../server/validate.js";
import { MandateError } from "../errors/index.js";

const NameParam = z.strictObject({ name: z.string().min(1).max(64) });
const IdParam = z.strictObject({ id: z.string().min(1).max(64) });
const AddServerBody = z.strictObject({
  name: z.string().min(1).max(63),
  command: z.array(z.string().max(4096)).min(1).max(256).optional(),
  url: z.string().max(2048).optional(),
  database: z.string().min(1).max(63).optional(),
  dbUser: z.string().min(1).max(63).optional(),
  transport: z.enum(["stdio", "http", "sse", "db"]).optional(),
  labels: z.record(z.string().max(128), z.string().max(256)).default({}),
  owner: z.string().min(1).max(256),
  stateless: z.boolean().default(false),
  driftMode: z.enum(["hide", "alert"]).default("hide"),
  secretAction: z.enum(["block", "redact", "flag"]).default("redact"),
  envSecrets: z.record(z.string().max(128), z.string().max(8192)).default({}),
  headerSecrets: z.record(z.string().max(128), z.string().max(8192)).default({}),
});
const DriftQuery = z.strictObject({ server: z.string().max(64).optional(), status: z.enum(["pending", "approved", "rejected", "all"]).default("pending") });

function mcpOf(ctx: ServerContext) {
  if (!ctx.mcp) throw new MandateError("INTERNAL", "the MCP proxy is not running in this control plane");
  return ctx.mcp;
}

/** The MCP catalog and drift review: admin only. Secrets go in and are never read back out. */
export function registerMcpAdminRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post("/v1/mcp/servers", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const body = parseRequest(AddServerBody, request.body);
    const server = await mcpOf(ctx).catalog.add(body, caller.spiffeId);
    await ctx.audit.append({
      type: "mcp.server.create",
      code: "OK",
      actor: { kind: "admin", spiffeId: caller.spiffeId },
      target: { server: server.name },
      outcome: { status: "ok" },
      // Names of the secrets only: their values exist in the catalog and nowhere else.
      details: { transport: server.transport, command: server.command ?? null, url: server.url ?? null, ...(server.database ? { database: server.database, dbUser: server.dbUser ?? null } : {}), labels: server.labels, owner: server.owner, stateless: server.stateless, driftMode: server.driftMode, secretAction: server.secretAction, secrets: server.secrets },
    });
    return { server };
  });

  app.get("/v1/mcp/servers", async (request) => {
    await ctx.auth.requireAdmin(request);
    const { catalog, proxy } = mcpOf(ctx);
    return { servers: (await catalog.list()).map((s) => ({ ...s, runningProcesses: proxy.pool.runningProcesses(s.name) })) };
  });

  app.get("/v1/mcp/servers/:name", async (request) => {
    await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    const { catalog, pins, proxy } = mcpOf(ctx);
    const server = await catalog.get(name);
    return { server: { ...server, runningProcesses: proxy.pool.runningProcesses(name), era: proxy.pool.knownEra(name) ?? null }, definitions: await pins.list({ server: name }) };
  });

  app.delete("/v1/mcp/servers/:name", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    const { catalog, proxy } = mcpOf(ctx);
    const server = await catalog.remove(name);
    await proxy.closeAll(name);
    await ctx.audit.append({ type: "mcp.server.delete", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { server: name }, outcome: { status: "ok" } });
    return { server };
  });

  app.get("/v1/mcp/drift", async (request) => {
    await ctx.auth.requireAdmin(request);
    const query = parseRequest(DriftQuery, request.query, "query");
    return { definitions: await mcpOf(ctx).pins.list({ server: query.server, status: query.status === "all" ? undefined : query.status }) };
  });

  for (const decision of ["approve", "reject"] as const) {
    app.post(`/v1/mcp/drift/:id/${decision}`, async (request) => {
      const caller = await ctx.auth.requireAdmin(request);
      const { id } = parseRequest(IdParam, request.params, "path");
      return { definition: await mcpOf(ctx).pins.decide(id, decision === "approve" ? "approved" : "rejected", caller.spiffeId) };
    });
  }
}
