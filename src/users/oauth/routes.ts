import type { TLSSocket } from "node:tls";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { MandateError, isMandateError } from "../../errors/index.js";
import type { ServerContext } from "../../server/context.js";
import type { WorkloadCredentials } from "../../server/workload-auth.js";
import type { LoginFailure, UserLoginService } from "../login-service.js";
import { ACCESS_TOKEN_PREFIX, AuthorizationRedirectError, OAuthAuthorizationServer, type OAuthSettings } from "./authorization-server.js";
import { OAuthProtocolError } from "./errors.js";
import { LOGIN_PAGE_HEADERS, errorPage, loginPage } from "./login-page.js";

type Params = Record<string, string | string[] | undefined>;

/** Form bodies as OAuth sends them; a repeated parameter stays visible (as an array) so it can be refused. */
function parseForm(body: string): Params {
  const out: Params = {};
  for (const [key, value] of new URLSearchParams(body)) {
    const previous = out[key];
    out[key] = previous === undefined ? value : Array.isArray(previous) ? [...previous, value] : [previous, value];
  }
  return out;
}

function single(params: Params, name: string): string | undefined {
  const value = params[name];
  return Array.isArray(value) ? undefined : value;
}

function sendOAuthError(reply: FastifyReply, error: unknown): FastifyReply {
  if (error instanceof OAuthProtocolError) return reply.status(error.status).header("cache-control", "no-store").type("application/json").send(error.toJSON());
  throw error;
}

/**
 * The OAuth 2.1 side of the MCP endpoint: RFC 9728 protected-resource metadata, RFC 8414
 * authorization-server metadata, RFC 7591 registration, the authorization endpoint with
 * its login page, and the token endpoint.
 */
export function registerOAuthRoutes(app: FastifyInstance, ctx: ServerContext, login: UserLoginService, settings?: Partial<OAuthSettings>): OAuthAuthorizationServer {
  const oauth = new OAuthAuthorizationServer({
    store: ctx.store,
    login,
    locks: ctx.locks,
    audit: ctx.audit,
    issuer: () => ctx.settings.publicUrl,
    resourceOrigins: () => ctx.settings.proxyAudiences.filter((a) => a.startsWith("https://")),
    settings,
    now: ctx.now,
  });

  app.get("/.well-known/oauth-protected-resource/mcp/:server", async (request, reply) => {
    const { server } = request.params as { server: string };
    void reply.header("cache-control", "max-age=300");
    return oauth.protectedResource(server);
  });

  app.get("/.well-known/oauth-authorization-server", async (_request, reply) => {
    void reply.header("cache-control", "max-age=300");
    return oauth.metadata();
  });

  void app.register(async (scope) => {
    scope.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: 16 * 1024 }, (_request, body, done) => done(null, parseForm(body as string)));

    scope.post("/oauth/register", async (request, reply) => {
      try {
        const client = await oauth.register(request.body, request.ip);
        return reply.status(201).header("cache-control", "no-store").send(client);
      } catch (error) {
        return sendOAuthError(reply, error);
      }
    });

    scope.get("/oauth/authorize", async (request, reply) => {
      try {
        const { request: pending, client } = await oauth.beginAuthorization(request.query as Params);
        return reply.headers(LOGIN_PAGE_HEADERS).send(loginPage({ requestId: pending.id, clientName: client.client_name ?? client.client_id, resource: pending.resource }));
      } catch (error) {
        if (error instanceof AuthorizationRedirectError) return reply.redirect(error.location, 303);
        if (error instanceof OAuthProtocolError) return reply.status(400).headers(LOGIN_PAGE_HEADERS).send(errorPage(error.description));
        throw error;
      }
    });

    scope.post("/oauth/authorize", async (request, reply) => {
      const form = (request.body ?? {}) as Params;
      const requestId = single(form, "request_id") ?? "";
      const user = single(form, "user") ?? "";
      try {
        const location = await oauth.completeWithPassword({ requestId, user, password: single(form, "password") ?? "", totp: single(form, "totp"), address: request.ip });
        return reply.redirect(location, 303);
      } catch (error) {
        if (error instanceof OAuthProtocolError) return reply.status(400).headers(LOGIN_PAGE_HEADERS).send(errorPage(error.description));
        if (!isMandateError(error)) throw error;
        // The page again, with the reason a person can act on; the audit log has the precise one.
        const { request: pending, client } = await oauth.pendingRequest(requestId).catch(() => ({ request: undefined, client: undefined }));
        if (!pending || !client) return reply.status(400).headers(LOGIN_PAGE_HEADERS).send(errorPage("this sign-in page has expired; start again from your MCP client"));
        const status = (error as LoginFailure).code === "RATE_LIMITED" ? 429 : 401;
        return reply.status(status).headers(LOGIN_PAGE_HEADERS).send(loginPage({ requestId, clientName: client.client_name ?? client.client_id, resource: pending.resource, error: error.message, user }));
      }
    });

    scope.post("/oauth/token", async (request, reply) => {
      try {
        const form = request.body;
        if (!form || typeof form !== "object" || Array.isArray(form)) throw new OAuthProtocolError("invalid_request", "the token request must be application/x-www-form-urlencoded");
        const tokens = await oauth.exchange(form as Params, request.ip);
        return reply.header("cache-control", "no-store").header("pragma", "no-cache").send(tokens);
      } catch (error) {
        return sendOAuthError(reply, error);
      }
    });
  });

  return oauth;
}

function bearerOf(request: FastifyRequest): string | undefined {
  const value = request.headers.authorization;
  if (typeof value !== "string") return undefined;
  const match = /^Bearer[ ]+(\S+)$/i.exec(value);
  return match?.[1];
}

/**
 * Wraps the MCP endpoint's caller authentication: a Mandate access token (a person
 * signed in through an MCP client's OAuth flow) is verified here; anything else (agent
 * SVIDs, JWT-SVIDs, delegation tokens) goes to the workload authenticator as before.
 */
export function mcpCallerAuthenticator(ctx: ServerContext, oauth: OAuthAuthorizationServer, workload: (request: FastifyRequest) => Promise<WorkloadCredentials>) {
  return async (request: FastifyRequest): Promise<WorkloadCredentials> => {
    const token = bearerOf(request);
    if (!token?.startsWith(ACCESS_TOKEN_PREFIX)) return workload(request);
    try {
      const socket = request.raw.socket as TLSSocket;
      if (typeof socket.getPeerX509Certificate === "function" && socket.getPeerX509Certificate()) {
        throw new MandateError("UNAUTHENTICATED", "an access token and a client certificate in one request: present one identity");
      }
      const server = (request.params as { server?: string }).server ?? "";
      return { caller: await oauth.authenticate(token, server) };
    } catch (error) {
      const code = isMandateError(error) ? error.code : "INTERNAL";
      await ctx.audit
        .append({ type: "mcp.request", code, actor: { kind: "anonymous", address: request.ip }, target: { route: request.url.split("?")[0] }, outcome: { status: "error", error: code, message: (error as Error).message }, details: { via: "oauth" } })
        .catch(() => undefined);
      throw error;
    }
  };
}
