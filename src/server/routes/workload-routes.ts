import type { FastifyInstance } from "fastify";
import type { ServerContext } from "../context.js";

/** What agents ask the control plane about themselves, authenticated the way the proxies authenticate them. */
export function registerWorkloadRoutes(app: FastifyInstance, ctx: ServerContext): void {
  // Like `tsh status`: lets an operator check which identity a credential presents to the proxies,
  // without echoing the delegation token itself.
  app.get("/v1/whoami", async (request) => {
    const { caller, delegationToken } = await ctx.workloadAuth.authenticate(request, "api.whoami");
    return {
      kind: caller.kind,
      spiffeId: caller.spiffeId,
      agent: caller.agent ?? null,
      via: caller.via,
      expiresAt: caller.notAfter.toISOString(),
      delegationPresented: delegationToken !== undefined,
      audiences: ctx.settings.proxyAudiences,
    };
  });
}
