import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { MandateError } from "../errors/index.js";
import type { ServerContext } from "../server/context.js";
import { parseRequest } from "../server/validate.js";
import { DbDefinition } from "./registry.js";
import type { DbService } from "./service.js";

const NameParam = z.object({ name: z.string().min(1).max(63) }).strict();

/** Admin routes for registered databases. Views carry secret references, never secrets. */
export function registerDbRoutes(app: FastifyInstance, ctx: ServerContext, db: DbService): void {
  app.get("/v1/db/databases", async (request) => {
    await ctx.auth.requireAdmin(request);
    return { databases: await db.registry.list() };
  });
  app.get("/v1/db/databases/:name", async (request) => {
    await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    await db.registry.list();
    const view = await db.registry.get(name);
    if (!view) throw new MandateError("NOT_FOUND", `no database ${name} is registered`);
    return { database: view, listener: db.port ? { port: db.port } : null };
  });
  app.post("/v1/db/databases", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const definition = parseRequest(DbDefinition, request.body);
    const view = await db.registry.add(definition, caller.spiffeId);
    await ctx.audit.append({
      type: "db.database.create",
      code: "OK",
      actor: { kind: "admin", spiffeId: caller.spiffeId },
      target: { database: view.name },
      outcome: { status: "ok" },
      details: { host: view.host, port: view.port, upstreamDatabase: view.database, users: Object.keys(view.users).sort(), labels: view.labels },
    });
    return { database: view };
  });
  app.delete("/v1/db/databases/:name", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    await db.registry.remove(name);
    await ctx.audit.append({ type: "db.database.delete", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { database: name }, outcome: { status: "ok" } });
    return { removed: name };
  });
}
