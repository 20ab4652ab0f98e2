import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { RateLimiterMemory } from "rate-limiter-flexible";
import type { AuditLog } from "../../audit/index.js";
import { MandateError } from "../../errors/index.js";
import type { LockRegistry } from "../../identity/index.js";
import type { AuthenticatedCaller } from "../../policy/index.js";
import type { OAuthRequestTable, Store } from "../../store/index.js";
import type { UserLoginService } from "../login-service.js";
import type { UserPrincipal } from "../registry.js";
import type { SsoLoginService } from "../sso/sso-login.js";
import { OAuthProtocolError } from "./errors.js";
import { redirectUriMatches, validateRedirectUri } from "./redirect-uris.js";

export const ACCESS_TOKEN_PREFIX = "mandate_at_";
export const REFRESH_TOKEN_PREFIX = "mandate_rt_";
export const MCP_SCOPE = "mcp";

export interface OAuthSettings {
  /** access token lifetime (default 1 h) */
  accessTokenTtlMs: number;
  /** authorization code lifetime (default 60 s) */
  codeTtlMs: number;
  /** how long a login page stays usable (default 10 min) */
  requestTtlMs: number;
  /** how long one sign-in can be refreshed, from the sign-in (default 8 h, as a user certificate; 0: no refresh tokens) */
  refreshTtlMs: number;
}

export const DEFAULT_OAUTH_SETTINGS: OAuthSettings = { accessTokenTtlMs: 3600_000, codeTtlMs: 60_000, requestTtlMs: 10 * 60_000, refreshTtlMs: 8 * 3600_000 };

export interface RegisteredClient {
  client_id: string;
  client_id_issued_at: number;
  client_name?: string | undefined;
  redirect_uris: string[];
  grant_types: ("authorization_code" | "refresh_token")[];
  response_types: ["code"];
  token_endpoint_auth_method: "none";
  scope: string;
}

const hash = (value: string) => createHash("sha256").update(value).digest("base64url");
const random = (bytes = 32) => randomBytes(bytes).toString("base64url");
const PKCE_VERIFIER = /^[A-Za-z0-9\-._~]{43,128}$/;
const PKCE_CHALLENGE = /^[A-Za-z0-9\-_]{43}$/;

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function one(params: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = params[name];
  // RFC 6749 §3.1: parameters must not appear more than once.
  if (Array.isArray(value)) throw new OAuthProtocolError("invalid_request", `the ${name} parameter appears more than once`);
  return value === "" ? undefined : value;
}

/** Where an authorization request can fail after its redirect URI is known to be the client's: the error goes back to the client. */
export class AuthorizationRedirectError extends Error {
  constructor(readonly location: string) {
    super("authorization request refused");
  }
}

export interface OAuthServerOptions {
  store: Store;
  login: UserLoginService;
  locks: LockRegistry;
  audit: AuditLog;
  /** the authorization server's issuer URL (this control plane's public URL) */
  issuer: () => string;
  /** origins whose `/mcp/<server>` resources tokens may be bound to */
  resourceOrigins: () => string[];
  settings?: Partial<OAuthSettings> | undefined;
  /** SSO logins, offered on the login page when providers are configured */
  sso?: SsoLoginService | undefined;
  now?: () => number;
}

export const BROWSER_COOKIE = "mandate_oauth";

/**
 * Mandate as the OAuth 2.1 authorization server of its own MCP endpoint: dynamic client
 * registration, the authorization code grant with PKCE S256 only, login by Mandate's
 * users, and opaque access tokens bound to one `/mcp/<server>` resource (RFC 8707),
 * which the MCP routes accept as that user. Tokens are never passed upstream: the proxy
 * reaches servers with the catalog's credentials only.
 */
export class OAuthAuthorizationServer {
  readonly settings: OAuthSettings;
  private readonly now: () => number;
  // Registration is open (RFC 7591 without an initial access token), so it is metered per address.
  private readonly registrations = new RateLimiterMemory({ keyPrefix: "oauth-register", points: 30, duration: 3600 });

  constructor(private readonly options: OAuthServerOptions) {
    this.settings = { ...DEFAULT_OAUTH_SETTINGS, ...(options.settings ?? {}) };
    this.now = options.now ?? Date.now;
  }

  get issuer(): string {
    return this.options.issuer();
  }

  /** RFC 8414 metadata. */
  metadata() {
    const issuer = this.issuer;
    return {
      issuer,
      authorization_endpoint: `${issuer}/oauth/authorize`,
      token_endpoint: `${issuer}/oauth/token`,
      registration_endpoint: `${issuer}/oauth/register`,
      response_types_supported: ["code"],
      response_modes_supported: ["query"],
      grant_types_supported: ["authorization_code", "refresh_token"],
      code_challenge_methods_supported: ["S256"],
      token_endpoint_auth_methods_supported: ["none"],
      scopes_supported: [MCP_SCOPE],
      authorization_response_iss_parameter_supported: true,
      service_documentation: "https://github.com/mandate/mandate/blob/main/docs/users.md",
    };
  }

  /** RFC 9728 metadata of one MCP server's endpoint. */
  protectedResource(server: string) {
    return {
      resource: this.resourceOf(server),
      authorization_servers: [this.issuer],
      bearer_methods_supported: ["header"],
      scopes_supported: [MCP_SCOPE],
      resource_name: `Mandate MCP server ${server}`,
    };
  }

  resourceOf(server: string): string {
    return `${this.issuer}/mcp/${encodeURIComponent(server)}`;
  }

  resourceMetadataUrl(server: string): string {
    return `${this.issuer}/.well-known/oauth-protected-resource/mcp/${encodeURIComponent(server)}`;
  }

  /** RFC 7591 registration: public clients only (no secret is issued), the authorization code grant only. */
  async register(body: unknown, address: string): Promise<RegisteredClient> {
    if (!body || typeof body !== "object" || Array.isArray(body)) throw new OAuthProtocolError("invalid_client_metadata", "the registration body must be a JSON object");
    const input = body as Record<string, unknown>;
    const uris = input.redirect_uris;
    if (!Array.isArray(uris) || uris.length === 0 || uris.length > 10 || !uris.every((u) => typeof u === "string" && u.length <= 2048)) {
      throw new OAuthProtocolError("invalid_redirect_uri", "redirect_uris must list 1 to 10 URIs");
    }
    const redirectUris = (uris as string[]).map(validateRedirectUri);
    try {
      await this.registrations.consume(address);
    } catch {
      throw new OAuthProtocolError("invalid_client_metadata", "too many client registrations from this address; try again later", 429);
    }
    const grantTypes = input.grant_types ?? ["authorization_code"];
    if (!Array.isArray(grantTypes) || grantTypes.some((g) => g !== "authorization_code" && g !== "refresh_token")) throw new OAuthProtocolError("invalid_client_metadata", "only the authorization_code grant is supported");
    const responseTypes = input.response_types ?? ["code"];
    if (!Array.isArray(responseTypes) || responseTypes.some((r) => r !== "code")) throw new OAuthProtocolError("invalid_client_metadata", "only response_type code is supported");
    const name = typeof input.client_name === "string" ? input.client_name.slice(0, 200) : undefined;
    const client: RegisteredClient = {
      client_id: `mcp-${random(16)}`,
      client_id_issued_at: Math.floor(this.now() / 1000),
      ...(name ? { client_name: name } : {}),
      redirect_uris: redirectUris,
      grant_types: this.settings.refreshTtlMs > 0 ? ["authorization_code", "refresh_token"] : ["authorization_code"],
      response_types: ["code"],
      // Whatever was asked for: without a secret to keep, every client is public and proves itself with PKCE.
      token_endpoint_auth_method: "none",
      scope: MCP_SCOPE,
    };
    await this.options.store.db.insertInto("oauth_clients").values({ client_id: client.client_id, metadata: JSON.stringify(client), created_at: this.now(), created_from: address }).execute();
    await this.options.audit.append({ type: "oauth.client.register", code: "OK", actor: { kind: "anonymous", address }, target: { client: client.client_id }, outcome: { status: "ok" }, details: { clientName: name ?? null, redirectUris } });
    return client;
  }

  async client(clientId: string): Promise<RegisteredClient | undefined> {
    if (clientId.length > 128) return undefined;
    const row = await this.options.store.db.selectFrom("oauth_clients").select("metadata").where("client_id", "=", clientId).executeTakeFirst();
    return row ? (JSON.parse(row.metadata) as RegisteredClient) : undefined;
  }

  /**
   * Checks an authorization request and keeps it for the login page. Until the client
   * and its redirect URI are known good, errors are shown, never redirected (an open
   * redirector otherwise); after that they go back to the client as RFC 6749 §4.1.2.1 says.
   */
  async beginAuthorization(query: Record<string, string | string[] | undefined>, browserCookie: string): Promise<{ request: OAuthRequestTable; client: RegisteredClient }> {
    const clientId = one(query, "client_id");
    if (!clientId) throw new OAuthProtocolError("invalid_request", "client_id is missing");
    const client = await this.client(clientId);
    if (!client) throw new OAuthProtocolError("invalid_client", "unknown client_id; register the client first (RFC 7591)");
    const redirectUri = one(query, "redirect_uri");
    if (!redirectUri || !redirectUriMatches(client.redirect_uris, redirectUri)) throw new OAuthProtocolError("invalid_request", "redirect_uri is missing or not one this client registered");
    const state = one(query, "state");
    const back = (error: string, description: string) => new AuthorizationRedirectError(this.redirectWith(redirectUri, { error, error_description: description, ...(state ? { state } : {}) }));
    let resource: string | undefined;
    try {
      if (one(query, "response_type") !== "code") throw back("unsupported_response_type", "only response_type=code is supported");
      const challenge = one(query, "code_challenge");
      if (one(query, "code_challenge_method") !== "S256" || !challenge || !PKCE_CHALLENGE.test(challenge)) throw back("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256");
      resource = one(query, "resource");
      if (!resource) throw back("invalid_target", "the resource parameter (RFC 8707) naming the MCP server is required");
      this.assertResource(resource, (d) => back("invalid_target", d));
      const scope = one(query, "scope") ?? MCP_SCOPE;
      if (scope.split(" ").some((s) => s !== MCP_SCOPE)) throw back("invalid_scope", `the only scope is ${MCP_SCOPE}`);
      const request: OAuthRequestTable = { id: `ar-${random(18)}`, client_id: clientId, redirect_uri: redirectUri, code_challenge: challenge, resource, scope: MCP_SCOPE, state: state ?? null, expires_at: this.now() + this.settings.requestTtlMs, browser_binding: hash(browserCookie) };
      await this.options.store.db.deleteFrom("oauth_requests").where("expires_at", "<", this.now()).execute();
      await this.options.store.db.insertInto("oauth_requests").values(request).execute();
      return { request, client };
    } catch (error) {
      if (error instanceof OAuthProtocolError) throw back(error.error, error.description);
      throw error;
    }
  }

  /**
   * The login page's request, for the browser that opened it only: the page set a cookie
   * whose hash the request keeps, so a sign-in cannot be completed from another browser
   * (login CSRF, or a consent page skipped by a crafted link).
   */
  async pendingRequest(id: string, browserCookie: string | undefined): Promise<{ request: OAuthRequestTable; client: RegisteredClient }> {
    const request = await this.options.store.db.selectFrom("oauth_requests").selectAll().where("id", "=", id.slice(0, 64)).executeTakeFirst();
    if (!request || request.expires_at <= this.now()) throw new OAuthProtocolError("invalid_request", "this sign-in page has expired; start again from your MCP client");
    if (!request.browser_binding || !browserCookie || !sameString(request.browser_binding, hash(browserCookie))) {
      throw new OAuthProtocolError("invalid_request", "this sign-in was opened in another browser (or its cookie was blocked); start again from your MCP client");
    }
    const client = await this.client(request.client_id);
    if (!client) throw new OAuthProtocolError("invalid_client", "the client was removed");
    return { request, client };
  }

  /** Password + TOTP on the login page; on success the request becomes a single-use code and the browser goes back to the client. */
  async completeWithPassword(input: { requestId: string; browserCookie: string | undefined; user: string; password: string; totp?: string | undefined; address: string }): Promise<string> {
    const { request } = await this.pendingRequest(input.requestId, input.browserCookie);
    const principal = await this.options.login.audited({ user: input.user, address: input.address, method: "oauth" }, () => this.options.login.verifyLocalUser(input));
    return this.issueCode(request, principal, input.address, { method: "password" });
  }

  ssoProviders(): Promise<string[]> {
    return this.options.sso ? this.options.sso.providerNames() : Promise.resolve([]);
  }

  /** The login page's SSO button: the browser is sent to the provider, and comes back to /oauth/sso/callback. */
  async startSso(input: { requestId: string; browserCookie: string | undefined; provider: string; address: string }): Promise<string> {
    const sso = this.options.sso;
    if (!sso) throw new OAuthProtocolError("invalid_request", "no SSO provider is configured");
    const { request } = await this.pendingRequest(input.requestId, input.browserCookie);
    const started = await sso.start({ provider: input.provider, redirectUri: `${this.issuer}/oauth/sso/callback`, address: input.address, oauthRequest: request.id });
    return started.authorizationUrl;
  }

  async finishSso(input: { state: string; code: string; browserCookie: string | undefined; address: string }): Promise<string> {
    const sso = this.options.sso;
    if (!sso) throw new OAuthProtocolError("invalid_request", "no SSO provider is configured");
    const { principal, oauthRequest, provider } = await sso.finishForOAuth(input);
    const { request } = await this.pendingRequest(oauthRequest, input.browserCookie);
    return this.issueCode(request, principal, input.address, { method: "sso", provider });
  }

  private async issueCode(request: OAuthRequestTable, principal: UserPrincipal, address: string, details: Record<string, unknown>): Promise<string> {
    await this.options.store.db.deleteFrom("oauth_requests").where("id", "=", request.id).execute();
    const code = random();
    await this.options.store.db.insertInto("oauth_codes").values({ code_hash: hash(code), request: JSON.stringify(request), user_name: principal.name, expires_at: this.now() + this.settings.codeTtlMs }).execute();
    const spiffeId = this.options.login.users.spiffeIdOf(principal.name);
    await this.options.audit.append({
      type: "oauth.authorize",
      code: "OK",
      actor: { kind: "user", user: principal.name, spiffeId, address },
      target: { client: request.client_id, resource: request.resource },
      outcome: { status: "ok" },
      details: { ...details, scope: request.scope },
    });
    return this.redirectWith(request.redirect_uri, { code, ...(request.state ? { state: request.state } : {}), iss: this.issuer });
  }

  private failure(address: string) {
    return async (error: OAuthProtocolError, details: Record<string, unknown> = {}) => {
      await this.options.audit.append({ type: "oauth.token", code: "LOGIN_FAILED", actor: { kind: "anonymous", address }, outcome: { status: "error", error: error.error, message: error.description }, details }).catch(() => undefined);
      return error;
    };
  }

  /** The token endpoint: authorization_code + PKCE (codes single use), or a rotating refresh token; tokens bound to the authorized resource. */
  async exchange(form: Record<string, string | string[] | undefined>, address: string) {
    const fail = this.failure(address);
    const grantType = one(form, "grant_type");
    if (grantType === "refresh_token" && this.settings.refreshTtlMs > 0) return this.refresh(form, address);
    if (grantType !== "authorization_code") throw await fail(new OAuthProtocolError("unsupported_grant_type", "grant_type must be authorization_code or refresh_token"));
    const code = one(form, "code");
    const verifier = one(form, "code_verifier");
    const clientId = one(form, "client_id");
    const redirectUri = one(form, "redirect_uri");
    if (!code || !verifier || !clientId || !redirectUri) throw await fail(new OAuthProtocolError("invalid_request", "code, code_verifier, client_id and redirect_uri are required"));
    // Taken and deleted at once: a code is good for one exchange, whatever happens next.
    const row = await this.options.store.transaction(async (tx) => {
      const found = await tx.selectFrom("oauth_codes").selectAll().where("code_hash", "=", hash(code)).executeTakeFirst();
      if (found) await tx.deleteFrom("oauth_codes").where("code_hash", "=", found.code_hash).execute();
      return found;
    });
    if (!row || row.expires_at <= this.now()) throw await fail(new OAuthProtocolError("invalid_grant", "the authorization code is unknown, used or expired"), { client: clientId });
    const request = JSON.parse(row.request) as OAuthRequestTable;
    if (request.client_id !== clientId) throw await fail(new OAuthProtocolError("invalid_grant", "the code was issued to another client"), { client: clientId });
    if (request.redirect_uri !== redirectUri) throw await fail(new OAuthProtocolError("invalid_grant", "redirect_uri differs from the authorization request's"), { client: clientId });
    if (!PKCE_VERIFIER.test(verifier) || !sameString(hash(verifier), request.code_challenge)) throw await fail(new OAuthProtocolError("invalid_grant", "the code_verifier does not match the code_challenge"), { client: clientId });
    const resource = one(form, "resource");
    if (resource !== undefined && resource !== request.resource) throw await fail(new OAuthProtocolError("invalid_target", "resource differs from the one authorized"), { client: clientId });
    const principal = await this.options.login.users.get(row.user_name);
    if (!principal || principal.disabled) throw await fail(new OAuthProtocolError("invalid_grant", "the user can no longer sign in"), { client: clientId });
    const family = this.settings.refreshTtlMs > 0 ? { id: `rf-${random(12)}`, expiresAt: this.now() + this.settings.refreshTtlMs } : undefined;
    return this.issueTokens({ user: principal.name, clientId, resource: request.resource, scope: request.scope, family, address, grant: "authorization_code" });
  }

  /**
   * Refresh (OAuth 2.1 §4.3): the presented token is spent and a new one returned with the
   * access token. A spent token presented again means a copy exists somewhere: the whole
   * family and its access tokens are revoked, and the person must sign in again.
   */
  private async refresh(form: Record<string, string | string[] | undefined>, address: string) {
    const fail = this.failure(address);
    const presented = one(form, "refresh_token");
    const clientId = one(form, "client_id");
    if (!presented || !clientId) throw await fail(new OAuthProtocolError("invalid_request", "refresh_token and client_id are required"));
    const t = this.now();
    const outcome = await this.options.store.transaction(async (tx) => {
      const row = await tx.selectFrom("oauth_refresh_tokens").selectAll().where("token_hash", "=", hash(presented)).executeTakeFirst();
      if (!row) return { error: "unknown" as const };
      // Conditional, so of two refreshes racing with one token only one spends it; the other is a reuse.
      const spent = await tx.updateTable("oauth_refresh_tokens").set({ used_at: t }).where("token_hash", "=", row.token_hash).where("used_at", "is", null).executeTakeFirst();
      if (Number(spent.numUpdatedRows) !== 1) {
        await tx.deleteFrom("oauth_refresh_tokens").where("family", "=", row.family).execute();
        await tx.deleteFrom("oauth_tokens").where("family", "=", row.family).execute();
        return { error: "reused" as const, row };
      }
      return { row };
    });
    if (outcome.error === "reused") {
      await this.options.audit.append({
        type: "oauth.refresh_reuse",
        code: "LOGIN_FAILED",
        actor: { kind: "anonymous", address },
        target: { client: outcome.row.client_id, user: outcome.row.user_name, resource: outcome.row.resource },
        outcome: { status: "error", error: "invalid_grant", message: "a spent refresh token was presented again; the sign-in was revoked" },
        details: { family: outcome.row.family },
      });
      throw new OAuthProtocolError("invalid_grant", "this refresh token was already used; the sign-in has been revoked, sign in again");
    }
    const row = outcome.row;
    if (!row) throw await fail(new OAuthProtocolError("invalid_grant", "the refresh token is unknown or revoked"), { client: clientId });
    if (row.client_id !== clientId) throw await fail(new OAuthProtocolError("invalid_grant", "the refresh token was issued to another client"), { client: clientId });
    if (row.family_expires_at <= t) throw await fail(new OAuthProtocolError("invalid_grant", "the sign-in has reached its end; sign in again"), { client: clientId });
    const resource = one(form, "resource");
    if (resource !== undefined && resource !== row.resource) throw await fail(new OAuthProtocolError("invalid_target", "resource differs from the one authorized"), { client: clientId });
    const principal = await this.options.login.users.get(row.user_name);
    const spiffeId = this.options.login.users.spiffeIdOf(row.user_name);
    if (!principal || principal.disabled || this.options.locks.lockFor({ spiffeId })) throw await fail(new OAuthProtocolError("invalid_grant", "the user can no longer sign in"), { client: clientId });
    return this.issueTokens({ user: principal.name, clientId, resource: row.resource, scope: row.scope, family: { id: row.family, expiresAt: row.family_expires_at }, address, grant: "refresh_token" });
  }

  private async issueTokens(input: { user: string; clientId: string; resource: string; scope: string; family: { id: string; expiresAt: number } | undefined; address: string; grant: string }) {
    const token = `${ACCESS_TOKEN_PREFIX}${random()}`;
    const t = this.now();
    // An access token never outlives the sign-in it was refreshed from.
    const expiresAt = Math.min(t + this.settings.accessTokenTtlMs, input.family?.expiresAt ?? Number.POSITIVE_INFINITY);
    const refreshToken = input.family ? `${REFRESH_TOKEN_PREFIX}${random()}` : undefined;
    await this.options.store.transaction(async (tx) => {
      await tx.insertInto("oauth_tokens").values({ token_hash: hash(token), client_id: input.clientId, user_name: input.user, resource: input.resource, scope: input.scope, created_at: t, expires_at: expiresAt, family: input.family?.id ?? null }).execute();
      if (refreshToken && input.family) {
        await tx
          .insertInto("oauth_refresh_tokens")
          .values({ token_hash: hash(refreshToken), family: input.family.id, client_id: input.clientId, user_name: input.user, resource: input.resource, scope: input.scope, created_at: t, family_expires_at: input.family.expiresAt, used_at: null })
          .execute();
      }
      await tx.deleteFrom("oauth_tokens").where("expires_at", "<", t).execute();
      await tx.deleteFrom("oauth_refresh_tokens").where("family_expires_at", "<", t).execute();
    });
    const spiffeId = this.options.login.users.spiffeIdOf(input.user);
    await this.options.audit.append({
      type: "oauth.token",
      code: "OK",
      actor: { kind: "user", user: input.user, spiffeId, address: input.address },
      target: { client: input.clientId, resource: input.resource },
      outcome: { status: "ok" },
      details: { grant: input.grant, expiresAt: new Date(expiresAt).toISOString(), scope: input.scope, ...(input.family ? { family: input.family.id, refreshableUntil: new Date(input.family.expiresAt).toISOString() } : {}) },
    });
    return {
      access_token: token,
      token_type: "Bearer",
      expires_in: Math.max(1, Math.floor((expiresAt - t) / 1000)),
      scope: input.scope,
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
    };
  }

  /**
   * Verifies an access token presented to `/mcp/<server>`: known, unexpired, bound to this
   * very server (a token for another resource is refused), its user neither disabled nor locked.
   */
  async authenticate(token: string, server: string): Promise<AuthenticatedCaller> {
    if (!token.startsWith(ACCESS_TOKEN_PREFIX) || token.length > 128) throw new MandateError("UNAUTHENTICATED", "not a Mandate access token");
    const row = await this.options.store.db.selectFrom("oauth_tokens").selectAll().where("token_hash", "=", hash(token)).executeTakeFirst();
    if (!row || row.expires_at <= this.now()) throw new MandateError("UNAUTHENTICATED", "the access token is unknown or expired; sign in again");
    let path: string;
    try {
      path = new URL(row.resource).pathname;
    } catch {
      path = "";
    }
    if (path !== `/mcp/${encodeURIComponent(server)}`) throw new MandateError("UNAUTHENTICATED", `the access token was issued for ${row.resource}, not for MCP server ${server}`);
    const principal = await this.options.login.users.get(row.user_name);
    if (!principal || principal.disabled) throw new MandateError("UNAUTHENTICATED", `user ${row.user_name} can no longer sign in`);
    const spiffeId = this.options.login.users.spiffeIdOf(principal.name);
    this.options.locks.assertNotLocked({ spiffeId });
    return { kind: "user", spiffeId, user: principal.name, via: "oauth", notAfter: new Date(row.expires_at) };
  }

  private assertResource(resource: string, refuse: (description: string) => Error): void {
    let url: URL;
    try {
      url = new URL(resource);
    } catch {
      throw refuse("resource is not an absolute URI");
    }
    if (url.hash || url.search) throw refuse("resource must not have a query or fragment");
    const origins = new Set([this.issuer, ...this.options.resourceOrigins()].map((o) => new URL(o).origin));
    if (!origins.has(url.origin) || !/^\/mcp\/[^/]+$/.test(url.pathname)) throw refuse(`resource must be one of this server's MCP endpoints, ${this.issuer}/mcp/<server>`);
  }

  private redirectWith(redirectUri: string, params: Record<string, string>): string {
    const url = new URL(redirectUri);
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    return url.toString();
  }
}
