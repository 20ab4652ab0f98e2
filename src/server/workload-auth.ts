import type { TLSSocket } from "node:tls";
import type { FastifyRequest } from "fastify";
import type { AuditLog } from "../audit/index.js";
import { MandateError, isMandateError } from "../errors/index.js";
import { ADMIN_PATH, SERVER_PATH, type SvidVerifier, agentNameOf } from "../identity/index.js";
import type { AuthenticatedCaller } from "../policy/index.js";
import type { CallerAuthenticator } from "./authenticate.js";

/** What a proxy gets from a request: who is calling, and the delegation token they presented. */
export interface WorkloadCredentials {
  caller: AuthenticatedCaller;
  delegationToken?: string | undefined;
}

export const DELEGATION_HEADER = "x-mandate-delegation";
/** `<jwt-svid>~<delegation-token>`: "~" is outside the base64url alphabet, so it cannot occur in either JWT. */
export const COMPOSITE_SEPARATOR = "~";
const MAX_CREDENTIAL_LENGTH = 32 * 1024;

/**
 * Authenticates calls to the proxies (MCP, LLM, and anything else an agent reaches over
 * HTTPS). An agent proves who it is with its X509-SVID on the TLS connection or with a
 * JWT-SVID as a bearer token; the delegation token rides beside it. SDKs that have only
 * an API-key slot (the OpenAI and Anthropic clients) put everything there:
 *
 *   mTLS connection   → the bearer / x-api-key value is the delegation token
 *   no client cert    → the bearer / x-api-key value is a JWT-SVID, or `<jwt-svid>~<delegation>`
 *   either            → `X-Mandate-Delegation: <token>` also carries the delegation token
 *
 * The delegation token is only extracted here; the access gate verifies that it names
 * exactly this caller, so a token replayed under another identity is refused there.
 */
export class WorkloadAuthenticator {
  constructor(
    private readonly mtls: CallerAuthenticator,
    private readonly verifier: SvidVerifier,
    private readonly audit: AuditLog,
    /** Audiences a JWT-SVID may name to be accepted by this deployment's proxies. */
    private readonly audiences: () => string[],
  ) {}

  async authenticate(request: FastifyRequest, attempted: string): Promise<WorkloadCredentials> {
    const hasClientCert = presentsClientCertificate(request.raw.socket as TLSSocket);
    let secret: string | undefined;
    let headerDelegation: string | undefined;
    try {
      secret = credentialSlot(request);
      headerDelegation = singleHeader(request, DELEGATION_HEADER);
    } catch (error) {
      throw await this.refuse(request, attempted, error);
    }
    if (hasClientCert) {
      // CallerAuthenticator records its own refusals.
      const caller = await this.mtls.authenticate(request, attempted);
      let delegationToken = headerDelegation;
      if (secret !== undefined) {
        const [first, second] = await this.split(request, attempted, secret);
        if (second !== undefined) {
          // A JWT-SVID on an mTLS connection must name the same identity: two identities in one request is a confused deputy waiting to happen.
          const jwt = await this.verifyJwt(request, first, attempted);
          if (jwt.spiffeId !== caller.spiffeId) {
            throw await this.refuse(request, attempted, new MandateError("UNAUTHENTICATED", `the JWT-SVID names ${jwt.spiffeId} but the client certificate is ${caller.spiffeId}; present one identity`));
          }
          delegationToken = await this.pick(request, attempted, delegationToken, second);
        } else {
          delegationToken = await this.pick(request, attempted, delegationToken, first);
        }
      }
      return {
        caller: { kind: caller.kind, spiffeId: caller.spiffeId, agent: caller.agent, user: caller.user, serialHex: caller.serialHex, via: "mtls", notAfter: caller.notAfter },
        delegationToken,
      };
    }
    if (secret === undefined) {
      throw await this.refuse(
        request,
        attempted,
        new MandateError("UNAUTHENTICATED", "present an X509-SVID client certificate (mTLS) or a JWT-SVID as `Authorization: Bearer <token>` (`mandate svid jwt --audience …`)"),
      );
    }
    const [jwtSvid, composedDelegation] = await this.split(request, attempted, secret);
    const caller = await this.verifyJwt(request, jwtSvid, attempted);
    return { caller, delegationToken: composedDelegation === undefined ? headerDelegation : await this.pick(request, attempted, headerDelegation, composedDelegation) };
  }

  private async split(request: FastifyRequest, attempted: string, secret: string): Promise<[string, string | undefined]> {
    try {
      return splitComposite(secret);
    } catch (error) {
      throw await this.refuse(request, attempted, error);
    }
  }

  private async pick(request: FastifyRequest, attempted: string, fromHeader: string | undefined, fromSlot: string): Promise<string> {
    try {
      return pickDelegation(fromHeader, fromSlot);
    } catch (error) {
      throw await this.refuse(request, attempted, error);
    }
  }

  private async verifyJwt(request: FastifyRequest, token: string, attempted: string): Promise<AuthenticatedCaller> {
    try {
      const audience = this.audienceFor(token);
      const verified = await this.verifier.verifyJwtSvid(token, audience);
      const id = verified.spiffeId;
      const agent = agentNameOf(id);
      const kind: AuthenticatedCaller["kind"] = id.path === ADMIN_PATH ? "admin" : id.path === SERVER_PATH ? "server" : agent ? "agent" : "workload";
      return { kind, spiffeId: id.uri, agent, via: "jwt-svid", notAfter: verified.expiresAt };
    } catch (error) {
      throw await this.refuse(request, attempted, error);
    }
  }

  /**
   * Picks which accepted audience to verify against from the token's own (unverified)
   * `aud`; the verifier then checks it properly. A token naming none of them is refused.
   */
  private audienceFor(token: string): string {
    const accepted = this.audiences();
    const aud = unverifiedAudience(token);
    const match = aud.find((a) => accepted.includes(a));
    if (!match) {
      throw new MandateError("JWT_AUDIENCE_MISMATCH", `JWT-SVID rejected: its audience ${JSON.stringify(aud)} names none of this deployment's proxy audiences (${accepted.join(", ")})`);
    }
    return match;
  }

  private async refuse(request: FastifyRequest, attempted: string, error: unknown): Promise<unknown> {
    const code = isMandateError(error) ? error.code : "INTERNAL";
    await this.audit
      .append({
        type: attempted,
        code,
        actor: { kind: "anonymous", address: request.ip },
        target: { route: request.routeOptions.url ?? request.url },
        outcome: { status: "error", error: code, message: (error as Error).message },
      })
      .catch(() => undefined);
    return error;
  }
}

// Whether a connection carries a client certificate cannot change (renegotiation is off),
// and asking builds an X509Certificate object each time, so the answer is kept per socket.
const clientCertificatePresent = new WeakMap<TLSSocket, boolean>();

function presentsClientCertificate(socket: TLSSocket): boolean {
  let present = clientCertificatePresent.get(socket);
  if (present === undefined) {
    present = typeof socket.getPeerX509Certificate === "function" && socket.getPeerX509Certificate() !== undefined;
    clientCertificatePresent.set(socket, present);
  }
  return present;
}

/** The API-key slot: `Authorization: Bearer …` (OpenAI and most clients) or `x-api-key` (Anthropic). */
function credentialSlot(request: FastifyRequest): string | undefined {
  const authorization = singleHeader(request, "authorization");
  let value: string | undefined;
  if (authorization !== undefined) {
    const match = /^Bearer[ ]+(\S+)$/i.exec(authorization);
    if (!match) throw new MandateError("UNAUTHENTICATED", "the Authorization header must be `Bearer <token>`");
    value = match[1];
  }
  const apiKey = singleHeader(request, "x-api-key");
  if (apiKey !== undefined) {
    if (value !== undefined && value !== apiKey) throw new MandateError("UNAUTHENTICATED", "Authorization and x-api-key carry different credentials; send one");
    value = apiKey;
  }
  if (value !== undefined && value.length > MAX_CREDENTIAL_LENGTH) throw new MandateError("UNAUTHENTICATED", `the credential is longer than ${MAX_CREDENTIAL_LENGTH} characters`);
  return value;
}

function singleHeader(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  if (Array.isArray(value)) throw new MandateError("UNAUTHENTICATED", `the ${name} header appears more than once`);
  if (value === undefined || value === "") return undefined;
  return value;
}

function splitComposite(value: string): [string, string | undefined] {
  const parts = value.split(COMPOSITE_SEPARATOR);
  if (parts.length > 2 || parts.some((p) => p.length === 0)) {
    throw new MandateError("UNAUTHENTICATED", "a composite credential is `<jwt-svid>~<delegation-token>`: exactly two non-empty parts");
  }
  return [parts[0]!, parts[1]];
}

function pickDelegation(fromHeader: string | undefined, fromSlot: string): string {
  if (fromHeader !== undefined && fromHeader !== fromSlot) {
    throw new MandateError("UNAUTHENTICATED", `two different delegation tokens were presented (the ${DELEGATION_HEADER} header and the credential); send one`);
  }
  return fromSlot;
}

function unverifiedAudience(token: string): string[] {
  const payload = token.split(".")[1];
  if (payload === undefined) throw new MandateError("INVALID_JWT", "JWT-SVID rejected: not a JWS compact serialization");
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    throw new MandateError("INVALID_JWT", "JWT-SVID rejected: the payload is not base64url-encoded JSON");
  }
  const aud = (claims as { aud?: unknown } | null)?.aud;
  if (typeof aud === "string") return [aud];
  if (Array.isArray(aud)) return aud.filter((a): a is string => typeof a === "string");
  throw new MandateError("JWT_AUDIENCE_MISMATCH", "JWT-SVID rejected: aud is missing");
}
