import type { TLSSocket } from "node:tls";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { AuditLog } from "../audit/index.js";
import { MandateError, isMandateError } from "../errors/index.js";
import { type Caller, type SvidVerifier, agentNameOf } from "../identity/index.js";
import type { CallerAuthenticator } from "../server/authenticate.js";
import type { PrincipalResolver } from "./principals.js";
import type { DelegationService } from "./service.js";
import { JWT_TOKEN_TYPE, TOKEN_EXCHANGE_GRANT } from "./token.js";
import type { Grant } from "./types.js";

export const TOKEN_PATH = "/v1/token";
export const DELEGATION_RESOURCE_PREFIX = "urn:mandate:delegation:";
export const TASK_RESOURCE_PREFIX = "urn:mandate:task:";
const PARAMETERS = new Set(["grant_type", "subject_token", "subject_token_type", "requested_token_type", "audience", "resource", "scope", "actor_token", "actor_token_type"]);
const MAX_BODY_BYTES = 32 * 1024;

/** RFC 6749 §5.2 error codes, as RFC 8693 §2.2.2 uses them. */
type OAuthErrorCode = "invalid_request" | "invalid_grant" | "invalid_target" | "unsupported_grant_type" | "invalid_client";

class OAuthError extends Error {
  constructor(
    readonly error: OAuthErrorCode,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export interface TokenRouteDeps {
  delegations: DelegationService;
  principals: PrincipalResolver;
  auth: CallerAuthenticator;
  verifier: SvidVerifier;
  audit: AuditLog;
  /** audiences a subject token may name, and the default audience of issued tokens */
  audiences: () => string[];
  now: () => number;
}

/**
 * The token endpoint (RFC 8693 token exchange): an agent proves who it is (its JWT-SVID as
 * the subject token, or its X509-SVID on the connection) and receives the delegation token
 * for one of its live grants, chosen with `resource` (urn:mandate:delegation:<id> or
 * urn:mandate:task:<task>), or its only live grant when it has one.
 */
export function registerTokenRoutes(app: FastifyInstance, deps: TokenRouteDeps): void {
  void app.register(async (scope) => {
    scope.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: MAX_BODY_BYTES }, (_request, body, done) => {
      try {
        done(null, parseForm(String(body)));
      } catch (error) {
        done(error as Error, undefined);
      }
    });
    scope.setErrorHandler((error, _request, reply) => {
      if (error instanceof OAuthError) return oauthError(reply, error);
      return oauthError(reply, new OAuthError("invalid_request", `the request body could not be read: ${(error as Error).message}`));
    });

    scope.post(TOKEN_PATH, async (request, reply) => {
      const params = asParams(request.body);
      let subject: string | undefined;
      try {
        const result = await exchange(deps, request, params, (s) => (subject = s));
        await deps.audit.append({
          type: "delegation.token",
          code: "OK",
          actor: { kind: "agent", spiffeId: result.subject, agent: result.grant.agent, address: request.ip },
          delegation: { id: result.grant.id, delegator: `${result.grant.delegator.kind}:${result.grant.delegator.name}`, task: result.grant.task, chain: result.chain },
          correlation: { task: result.grant.task },
          target: { delegation: result.grant.id, audience: result.audience },
          outcome: { status: "ok" },
          details: { via: result.via, expiresAt: new Date(result.grant.expiresAt).toISOString() },
        });
        return reply
          .header("cache-control", "no-store")
          .header("pragma", "no-cache")
          .send({ access_token: result.token, issued_token_type: JWT_TOKEN_TYPE, token_type: "N_A", expires_in: Math.max(0, Math.floor((result.expiresAt - deps.now()) / 1000)) });
      } catch (error) {
        const oauth = error instanceof OAuthError ? error : toOAuthError(error);
        await deps.audit
          .append({
            type: "delegation.token",
            code: isMandateError(error) ? error.code : oauth.error.toUpperCase(),
            actor: { kind: subject ? "agent" : "anonymous", ...(subject ? { spiffeId: subject } : {}), address: request.ip },
            target: { route: TOKEN_PATH, ...(params.resource ? { resource: params.resource.slice(0, 256) } : {}) },
            outcome: { status: "error", error: oauth.error, message: oauth.message },
          })
          .catch(() => undefined);
        return oauthError(reply, oauth);
      }
    });

    scope.get(`${TOKEN_PATH}/jwks`, async () => deps.delegations.tokens.jwks());
  });
}

interface ExchangeResult {
  token: string;
  grant: Grant;
  chain: string[];
  subject: string;
  audience: string[];
  expiresAt: number;
  via: "jwt-svid" | "mtls";
}

async function exchange(deps: TokenRouteDeps, request: FastifyRequest, params: Record<string, string>, onSubject: (s: string) => void): Promise<ExchangeResult> {
  if (params.grant_type !== TOKEN_EXCHANGE_GRANT) {
    throw new OAuthError(params.grant_type ? "unsupported_grant_type" : "invalid_request", params.grant_type ? `grant_type ${JSON.stringify(params.grant_type.slice(0, 100))} is not supported; use ${TOKEN_EXCHANGE_GRANT}` : `grant_type is required (${TOKEN_EXCHANGE_GRANT})`);
  }
  if (params.actor_token !== undefined) throw new OAuthError("invalid_request", "actor_token is not supported: sub-delegation is a grant (`mandate delegate --parent …`), then a token exchange by the child agent");
  if (params.requested_token_type !== undefined && params.requested_token_type !== JWT_TOKEN_TYPE) {
    throw new OAuthError("invalid_request", `requested_token_type ${JSON.stringify(params.requested_token_type.slice(0, 100))} cannot be issued; this endpoint issues ${JWT_TOKEN_TYPE}`);
  }
  const { spiffeId, agent, via } = await subjectOf(deps, request, params);
  onSubject(spiffeId);
  const accepted = deps.audiences();
  const audience = params.audience === undefined ? [accepted[0]!] : [params.audience];
  if (!accepted.includes(audience[0]!)) throw new OAuthError("invalid_target", `audience ${JSON.stringify(audience[0]!.slice(0, 200))} is not one of this trust domain's proxies (${accepted.join(", ")})`);
  let grant: Grant;
  try {
    grant = selectGrant(deps, agent, params.resource);
  } catch (error) {
    // A grant made a moment ago on another control plane may not be in this one's view yet.
    if (!(error instanceof OAuthError) || error.error !== "invalid_grant") throw error;
    await deps.delegations.registry.refresh(true);
    grant = selectGrant(deps, agent, params.resource);
  }
  let verified;
  try {
    verified = await deps.delegations.verifyGrant(grant.id, agent);
  } catch (error) {
    throw new OAuthError("invalid_grant", (error as Error).message);
  }
  const delegatorIds = verified.resolved.chain.map((l) => deps.principals.spiffeIdOf(l.delegator.kind, l.delegator.name));
  const { token } = await deps.delegations.tokens.issue({ grant, agentSpiffeId: spiffeId, delegatorSpiffeIds: delegatorIds, audience });
  return { token, grant, chain: verified.summary.chain, subject: spiffeId, audience, expiresAt: grant.expiresAt, via };
}

async function subjectOf(deps: TokenRouteDeps, request: FastifyRequest, params: Record<string, string>): Promise<{ spiffeId: string; agent: string; via: "jwt-svid" | "mtls" }> {
  const socket = request.raw.socket as TLSSocket;
  const hasCert = typeof socket.getPeerX509Certificate === "function" && socket.getPeerX509Certificate() !== undefined;
  let mtls: Caller | undefined;
  if (hasCert) {
    try {
      mtls = await deps.auth.authenticate(request, "delegation.token");
    } catch (error) {
      throw new OAuthError("invalid_client", `the client certificate was refused: ${(error as Error).message}`, 401);
    }
  }
  if (params.subject_token === undefined) {
    if (!mtls) throw new OAuthError("invalid_request", "subject_token is required (the agent's JWT-SVID, subject_token_type urn:ietf:params:oauth:token-type:jwt), or connect with the agent's X509-SVID");
    if (mtls.kind !== "agent" || !mtls.agent) throw new OAuthError("invalid_request", `${mtls.spiffeId} is not an agent; delegation tokens are issued to agents`);
    return { spiffeId: mtls.spiffeId, agent: mtls.agent, via: "mtls" };
  }
  if (params.subject_token_type !== JWT_TOKEN_TYPE) throw new OAuthError("invalid_request", `subject_token_type must be ${JWT_TOKEN_TYPE} (a JWT-SVID)`);
  let verified;
  try {
    const audience = audienceFor(params.subject_token, deps.audiences());
    verified = await deps.verifier.verifyJwtSvid(params.subject_token, audience);
  } catch (error) {
    throw new OAuthError("invalid_request", `subject_token rejected: ${(error as Error).message}`);
  }
  const agent = agentNameOf(verified.spiffeId);
  if (!agent) throw new OAuthError("invalid_request", `subject_token names ${verified.spiffeId.uri}, which is not an agent`);
  if (mtls && mtls.spiffeId !== verified.spiffeId.uri) throw new OAuthError("invalid_request", `subject_token names ${verified.spiffeId.uri} but the client certificate is ${mtls.spiffeId}; present one identity`);
  return { spiffeId: verified.spiffeId.uri, agent, via: "jwt-svid" };
}

function selectGrant(deps: TokenRouteDeps, agent: string, resource: string | undefined): Grant {
  const registry = deps.delegations.registry;
  if (resource?.startsWith(DELEGATION_RESOURCE_PREFIX)) {
    const id = resource.slice(DELEGATION_RESOURCE_PREFIX.length);
    const grant = registry.cached(id);
    if (!grant || grant.agent !== agent) throw new OAuthError("invalid_grant", `agent ${agent} holds no delegation ${id.slice(0, 64)}`);
    return grant;
  }
  const live = registry.activeFor(agent);
  if (resource?.startsWith(TASK_RESOURCE_PREFIX)) {
    const task = resource.slice(TASK_RESOURCE_PREFIX.length);
    const forTask = live.filter((g) => g.task === task);
    if (forTask.length === 0) throw new OAuthError("invalid_grant", `agent ${agent} holds no live delegation for task ${task.slice(0, 128)}`);
    // The newest grant for the task: a re-issued delegation supersedes an older one.
    return forTask[forTask.length - 1]!;
  }
  if (resource !== undefined) throw new OAuthError("invalid_target", `resource must be ${DELEGATION_RESOURCE_PREFIX}<id> or ${TASK_RESOURCE_PREFIX}<task>`);
  if (live.length === 1) return live[0]!;
  if (live.length === 0) throw new OAuthError("invalid_grant", `agent ${agent} holds no live delegation`);
  throw new OAuthError("invalid_request", `agent ${agent} holds ${live.length} live delegations (${live.map((g) => `${g.id} for ${g.task}`).join(", ")}); choose one with resource=${TASK_RESOURCE_PREFIX}<task> or ${DELEGATION_RESOURCE_PREFIX}<id>`);
}

function audienceFor(token: string, accepted: string[]): string {
  const payload = token.split(".")[1];
  let aud: unknown;
  try {
    aud = (JSON.parse(Buffer.from(payload ?? "", "base64url").toString("utf8")) as { aud?: unknown }).aud;
  } catch {
    throw new MandateError("INVALID_JWT", "not a JWT (the payload is not base64url-encoded JSON)");
  }
  const list = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud.filter((a): a is string => typeof a === "string") : [];
  const match = list.find((a) => accepted.includes(a));
  if (!match) throw new MandateError("JWT_AUDIENCE_MISMATCH", `its audience ${JSON.stringify(list)} names none of this trust domain's proxies (${accepted.join(", ")})`);
  return match;
}

function toOAuthError(error: unknown): OAuthError {
  if (isMandateError(error) && error.code === "STORE_UNAVAILABLE") return new OAuthError("invalid_request", error.message, 503);
  return new OAuthError("invalid_request", isMandateError(error) ? error.message : "the token could not be issued");
}

function oauthError(reply: FastifyReply, error: OAuthError): FastifyReply {
  return reply.status(error.status).header("cache-control", "no-store").send({ error: error.error, error_description: error.message });
}

/** RFC 6749 §3.2: parameters sent without a value are omitted; none may appear twice. */
function parseForm(body: string): Record<string, string> {
  const params: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(body)) {
    if (value === "") continue;
    if (Object.prototype.hasOwnProperty.call(params, name)) throw new OAuthError("invalid_request", `parameter ${name.slice(0, 64)} appears more than once`);
    Object.defineProperty(params, name, { value, enumerable: true, writable: true });
  }
  return params;
}

/** Form bodies, and JSON objects of strings for clients that only speak JSON. */
function asParams(body: unknown): Record<string, string> {
  if (body === undefined || body === null || typeof body !== "object" || Array.isArray(body)) throw new OAuthError("invalid_request", "send the parameters as application/x-www-form-urlencoded");
  const params: Record<string, string> = {};
  for (const [name, value] of Object.entries(body)) {
    if (!PARAMETERS.has(name)) continue;
    if (typeof value !== "string") throw new OAuthError("invalid_request", `parameter ${name} must be a string`);
    if (value !== "") params[name] = value;
  }
  return params;
}
