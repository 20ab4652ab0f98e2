import type { TLSSocket } from "node:tls";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { MandateError, isMandateError } from "../../errors/index.js";
import type { ServerContext } from "../../server/context.js";
import type { WorkloadCredentials } from "../../server/workload-auth.js";
import type { LoginFailure, UserLoginService } from "../login-service.js";
import { randomBytes } from "node:crypto";
import type { SsoLoginService } from "../sso/sso-login.js";
import { ACCESS_TOKEN_PREFIX, AuthorizationRedirectError, BROWSER_COOKIE, OAuthAuthorizationServer, type OAuthSettings } from "./authorization-server.js";
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

function browserCookie(request: FastifyRequest): string | undefined {
  const header = request.headers.cookie;
  if (typeof header !== "string") return undefined;
  for (const part of header.split(";")) {
    const [name, ...value] = part.trim().split("=");
    if (name === BROWSER_COOKIE) return value.join("=");
  }
  return undefined;
}

function redirectHost(uri: string): string {
  try {
    const url = new URL(uri);
    return url.host || `${url.protocol}${url.pathname}`;
  } catch {
    return uri;
  }
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
export function registerOAuthRoutes(app: FastifyInstance, ctx: ServerContext, login: UserLoginService, settings?: Partial<OAuthSettings>, sso?: SsoLoginService): OAuthAuthorizationServer {
  const oauth = new OAuthAuthorizationServer({
    store: ctx.store,
    login,
    locks: ctx.locks,
    audit: ctx.audit,
    issuer: () => ctx.settings.publicUrl,
    resourceOrigins: () => ctx.settings.proxyAudiences.filter((a) => a.startsWith("https://")),
    settings,
    sso,
    now: ctx.now,
  });
  const page = async (requestId: string, browser: string | undefined, extra: { error?: string; user?: string } = {}) => {
    const { request: pending, client } = await oauth.pendingRequest(requestId, browser);
    return loginPage({ requestId, clientName: client.client_name ?? client.client_id, redirectHost: redirectHost(pending.redirect_uri), resource: pending.resource, providers: await oauth.ssoProviders(), ...extra });
  };

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
        // The browser that opens the page is the only one that may finish the sign-in.
        const cookie = randomBytes(24).toString("base64url");
        const { request: pending } = await oauth.beginAuthorization(request.query as Params, cookie);
        void reply.header("set-cookie", `${BROWSER_COOKIE}=${cookie}; Path=/oauth; Secure; HttpOnly; SameSite=Lax; Max-Age=${Math.floor(oauth.settings.requestTtlMs / 1000)}`);
        return reply.headers(LOGIN_PAGE_HEADERS).send(await page(pending.id, cookie));
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
      const browser = browserCookie(request);
      try {
        const location = await oauth.completeWithPassword({ requestId, browserCookie: browser, user, password: single(form, "password") ?? "", totp: single(form, "totp"), address: request.ip });
        return reply.redirect(location, 303);
      } catch (error) {
        if (error instanceof OAuthProtocolError) return reply.status(400).headers(LOGIN_PAGE_HEADERS).send(errorPage(error.description));
        if (!isMandateError(error)) throw error;
        // The page again, with the reason a person can act on; the audit log has the precise one.
        const html = await page(requestId, browser, { error: error.message, user }).catch(() => undefined);
        if (!html) return reply.status(400).headers(LOGIN_PAGE_HEADERS).send(errorPage("this sign-in page has expired; start again from your MCP client"));
        return reply.status((error as LoginFailure).code === "RATE_LIMITED" ? 429 : 401).headers(LOGIN_PAGE_HEADERS).send(html);
      }
    });

    scope.post("/oauth/sso", async (request, reply) => {
      const form = (request.body ?? {}) as Params;
      try {
        const location = await oauth.startSso({ requestId: single(form, "request_id") ?? "", browserCookie: browserCookie(request), provider: single(form, "provider") ?? "", address: request.ip });
        return reply.redirect(location, 303);
      } catch (error) {
        if (error instanceof OAuthProtocolError || isMandateError(error)) return reply.status(400).headers(LOGIN_PAGE_HEADERS).send(errorPage((error as Error).message));
        throw error;
      }
    });

    scope.get("/oauth/sso/callback", async (request, reply) => {
      const query = request.query as Params;
      const state = single(query, "state") ?? "";
      try {
        const providerError = single(query, "error");
        if (providerError) throw new OAuthProtocolError("access_denied", `the provider refused the sign-in: ${providerError.slice(0, 100)}`);
        const location = await oauth.finishSso({ state, code: single(query, "code") ?? "", browserCookie: browserCookie(request), address: request.ip });
        return reply.redirect(location, 303);
      } catch (error) {
        if (error instanceof OAuthProtocolError || isMandateError(error)) return reply.status(401).headers(LOGIN_PAGE_HEADERS).send(errorPage((error as Error).message));
        throw error;
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
