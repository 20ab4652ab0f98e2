import type { FastifyInstance } from "fastify";
import type { ServerContext } from "../context.js";

/** Liveness says the process answers; readiness says it can issue (store writable, lock view fresh). */
export function registerHealthRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get("/healthz", async () => ({ status: "ok" }));
  // Usage by agent and team is not for everyone: Prometheus scrapes with an SVID of the trust domain (tls_config cert_file/key_file).
  app.get("/metrics", async (request, reply) => {
    await ctx.auth.authenticate(request, "api.metrics");
    return reply.header("content-type", ctx.metrics.contentType).send(await ctx.metrics.metrics());
  });
  app.get("/readyz", async (_request, reply) => {
    const problems: string[] = [];
    try {
      ctx.store.assertWritable();
    } catch (error) {
      problems.push((error as Error).message);
    }
    try {
      ctx.locks.assertFresh();
    } catch (error) {
      problems.push((error as Error).message);
    }
    if (problems.length > 0) return reply.status(503).send({ status: "unavailable", problems });
    return { status: "ready", trustDomain: ctx.authority.trustDomain, bundleSequence: ctx.authority.bundleSequence };
  });
}
