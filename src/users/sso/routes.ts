import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { ServerContext } from "../../server/context.js";
import { parseRequest } from "../../server/validate.js";
import type { UserLoginService } from "../login-service.js";
import { OidcRelyingParty } from "./oidc-client.js";
import { SsoProviderInput, SsoProviderRegistry } from "./providers.js";
import { SsoLoginService } from "./sso-login.js";

const NameParam = z.strictObject({ name: z.string().min(1).max(63) });
const StartBody = z.strictObject({ provider: z.string().min(1).max(63), redirectUri: z.string().min(1).max(512) });
const FinishBody = z.strictObject({
  loginId: z.string().min(1).max(64),
  state: z.string().min(1).max(256),
  code: z.string().min(1).max(4096),
  csr: z.string().min(1).max(16_384),
  ttlSeconds: z.number().int().positive().max(30 * 24 * 3600).optional(),
});

/** SSO providers (admin) and the two halves of an SSO login (anyone: the proof is the provider's). */
export function registerSsoRoutes(app: FastifyInstance, ctx: ServerContext, login: UserLoginService): SsoLoginService {
  const providers = new SsoProviderRegistry(ctx.store, ctx.now);
  const relyingParty = new OidcRelyingParty(ctx.now);
  const sso = new SsoLoginService(ctx.store, providers, relyingParty, login, ctx.now);

  app.post("/v1/sso/providers", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const body = parseRequest(SsoProviderInput, request.body);
    // Discovery now, so a typo in the issuer is found by the admin, not by the first person logging in.
    await relyingParty.discover(body.issuer);
    const provider = await providers.add(body, caller.spiffeId);
    await ctx.audit.append({
      type: "sso_provider.create",
      code: "OK",
      actor: { kind: "admin", spiffeId: caller.spiffeId },
      target: { provider: provider.name, issuer: provider.issuer },
      outcome: { status: "ok" },
      details: { clientId: provider.clientId, clientSecretEnv: provider.clientSecretEnv ?? null, scopes: provider.scopes, claimRoles: provider.claimRoles ?? null, roleMap: provider.roleMap, allowedEmailDomains: provider.allowedEmailDomains },
    });
    return { provider };
  });

  app.get("/v1/sso/providers", async (request) => {
    await ctx.auth.requireAdmin(request);
    return { providers: await providers.list() };
  });

  app.delete("/v1/sso/providers/:name", async (request) => {
    const caller = await ctx.auth.requireAdmin(request);
    const { name } = parseRequest(NameParam, request.params, "path");
    const provider = await providers.remove(name);
    await ctx.audit.append({ type: "sso_provider.delete", code: "OK", actor: { kind: "admin", spiffeId: caller.spiffeId }, target: { provider: provider.name, issuer: provider.issuer }, outcome: { status: "ok" } });
    return { provider };
  });

  app.post("/v1/login/sso/start", async (request) => {
    const body = parseRequest(StartBody, request.body);
    return sso.start({ ...body, address: request.ip });
  });

  app.post("/v1/login/sso/finish", async (request) => {
    const body = parseRequest(FinishBody, request.body);
    return sso.finish({ ...body, address: request.ip });
  });

  return sso;
}
