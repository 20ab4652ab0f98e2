import * as jose from "jose";
import { MandateError } from "../errors/index.js";
import type { DelegationScope } from "../policy/index.js";
import type { DelegationKeyring } from "./keyring.js";
import type { Grant } from "./types.js";

/** RFC 8725 §3.11 explicit typing, so a delegation token is never mistaken for a JWT-SVID (whose typ is JWT or JOSE) or the reverse. */
export const DELEGATION_TOKEN_TYPE = "delegation+jwt";
export const DELEGATION_TOKEN_ALG = "ES256";
export const TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange";
export const JWT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:jwt";
const MAX_TOKEN_LENGTH = 16 * 1024;
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const CLOCK_TOLERANCE_SECONDS = 30;

/** RFC 8693 §4.1: the current actor outermost, earlier actors nested inside. */
export interface ActClaim {
  sub: string;
  act?: ActClaim;
}

export interface DelegationClaims {
  iss: string;
  sub: string;
  aud: string[];
  iat: number;
  nbf: number;
  exp: number;
  /** the grant id */
  jti: string;
  act: ActClaim;
  task_id: string;
  /** the grant's scope as stored (for readers; the gate enforces the stored grant, not this copy) */
  delegation_scope: { allow: string[]; deny: string[]; require_approval: string[]; max_spend_usd?: number };
}

export function actChain(links: { spiffeId: string }[]): ActClaim {
  // links are root first; the most recent delegator is the outermost actor.
  let act: ActClaim | undefined;
  for (const link of links) act = act ? { sub: link.spiffeId, act } : { sub: link.spiffeId };
  if (!act) throw new MandateError("INTERNAL", "a delegation chain has at least one link");
  return act;
}

export function scopeClaim(scope: DelegationScope): DelegationClaims["delegation_scope"] {
  return { allow: scope.allow, deny: scope.deny, require_approval: scope.requireApproval, ...(scope.maxSpendUsd !== undefined ? { max_spend_usd: scope.maxSpendUsd } : {}) };
}

/** Verified tokens kept so a proxy's hot path does not repeat the ES256 verification (same bytes, same answer). */
const VERIFIED_CACHE_LIMIT = 10_000;

export class DelegationTokens {
  private readonly verified = new Map<string, DelegationClaims>();

  constructor(
    private readonly keys: DelegationKeyring,
    readonly issuer: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** The public keys as a JWKS, for anyone who wants to read a token's claims with proof. */
  jwks(): { keys: object[] } {
    return { keys: this.keys.all().map((k) => ({ ...k.publicKey.export({ format: "jwk" }), kid: k.kid, alg: DELEGATION_TOKEN_ALG, use: "sig" })) };
  }

  async issue(input: { grant: Grant; agentSpiffeId: string; delegatorSpiffeIds: string[]; audience: string[] }): Promise<{ token: string; claims: DelegationClaims }> {
    await this.keys.rotateIfDue();
    const key = this.keys.current();
    const iat = Math.floor(this.now() / 1000);
    const claims: DelegationClaims = {
      iss: this.issuer,
      sub: input.agentSpiffeId,
      aud: input.audience,
      iat,
      nbf: iat,
      exp: Math.floor(input.grant.expiresAt / 1000),
      jti: input.grant.id,
      act: actChain(input.delegatorSpiffeIds.map((spiffeId) => ({ spiffeId }))),
      task_id: input.grant.task,
      delegation_scope: scopeClaim(input.grant.scope),
    };
    const token = await new jose.SignJWT(claims as unknown as jose.JWTPayload).setProtectedHeader({ alg: DELEGATION_TOKEN_ALG, kid: key.kid, typ: DELEGATION_TOKEN_TYPE }).sign(key.privateKey);
    return { token, claims };
  }

  /**
   * Verifies signature, algorithm (pinned, never taken from the token), type, issuer,
   * audience and lifetime. Whether the grant is still live and whether the presenter is
   * the token's subject are the gate's checks.
   */
  async verify(token: string, audiences: string[]): Promise<DelegationClaims> {
    const hit = this.verified.get(token);
    if (hit) {
      // Lifetime and audience are re-checked on every use; only the signature check is remembered.
      if (hit.exp * 1000 + CLOCK_TOLERANCE_SECONDS * 1000 > this.now() && hit.aud.some((a) => audiences.includes(a))) return hit;
      this.verified.delete(token);
    }
    const claims = await this.verifyUncached(token, audiences);
    if (this.verified.size >= VERIFIED_CACHE_LIMIT) this.verified.clear();
    this.verified.set(token, claims);
    return claims;
  }

  private async verifyUncached(token: string, audiences: string[]): Promise<DelegationClaims> {
    if (typeof token !== "string" || token.length === 0) throw invalid("the token is empty");
    if (token.length > MAX_TOKEN_LENGTH) throw invalid(`the token is longer than ${MAX_TOKEN_LENGTH} characters`);
    if (!COMPACT.test(token)) throw invalid("not a JWS compact serialization (three non-empty base64url segments)");
    let header: Record<string, unknown>;
    try {
      header = jose.decodeProtectedHeader(token) as Record<string, unknown>;
    } catch {
      throw invalid("the header is not base64url-encoded JSON");
    }
    for (const name of Object.keys(header)) if (!["alg", "kid", "typ"].includes(name)) throw invalid(`header parameter ${JSON.stringify(name)} is not allowed`);
    if (header.alg !== DELEGATION_TOKEN_ALG) throw invalid(`algorithm ${JSON.stringify(header.alg)} is not accepted; delegation tokens are ${DELEGATION_TOKEN_ALG}`);
    if (header.typ !== DELEGATION_TOKEN_TYPE) throw invalid(`typ ${JSON.stringify(header.typ)} is not ${DELEGATION_TOKEN_TYPE} (is this a JWT-SVID? present it as the credential, and the delegation token beside it)`);
    const key = typeof header.kid === "string" ? await this.keys.find(header.kid) : undefined;
    if (!key) throw invalid(`kid ${JSON.stringify(header.kid)} is not one of this trust domain's delegation keys`);
    let payload: jose.JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(token, key.publicKey, {
        algorithms: [DELEGATION_TOKEN_ALG],
        typ: DELEGATION_TOKEN_TYPE,
        issuer: this.issuer,
        audience: audiences,
        requiredClaims: ["exp", "iat", "sub", "jti", "aud"],
        currentDate: new Date(this.now()),
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
      }));
    } catch (error) {
      if (error instanceof jose.errors.JWTExpired) throw new MandateError("DELEGATION_EXPIRED", `the delegation token expired at ${describeTime(error.payload.exp)}`);
      if (error instanceof jose.errors.JWSSignatureVerificationFailed) throw invalid("the signature does not verify (was the token altered?)");
      if (error instanceof jose.errors.JWTClaimValidationFailed) throw invalid(error.claim === "aud" ? `aud ${JSON.stringify(error.payload.aud)} names none of this trust domain's proxies` : `${error.claim} ${error.reason === "missing" ? "is missing" : `is invalid: ${error.message}`}`);
      throw invalid((error as Error).message);
    }
    if (typeof payload.task_id !== "string" || typeof payload.act !== "object" || payload.act === null) throw invalid("task_id or act is missing");
    if (!Array.isArray(payload.aud)) throw invalid("aud must be an array");
    return payload as unknown as DelegationClaims;
  }
}

function invalid(reason: string): MandateError {
  return new MandateError("DELEGATION_INVALID", `delegation token rejected: ${reason}`);
}

function describeTime(seconds: unknown): string {
  if (typeof seconds !== "number") return String(seconds);
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}
