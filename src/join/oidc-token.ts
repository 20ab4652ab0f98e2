import { type JWTPayload, type JWTVerifyGetKey, createLocalJWKSet, createRemoteJWKSet, decodeJwt, decodeProtectedHeader, errors, jwtVerify } from "jose";
import { MandateError } from "../errors/index.js";
import { type JoinRule, validateFetchUrl } from "./join-rules.js";

/** Asymmetric algorithms only: none and HS* (an attacker could sign with the public key) never verify. */
export const JOIN_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"];
export const MAX_JOIN_JWT_LENGTH = 16 * 1024;
const CLOCK_TOLERANCE_S = 30;
const DISCOVERY_TTL_MS = 3600_000;

/** What can be read from a token before it is verified: only to find the rules to verify it with. */
export function unverifiedIssuer(token: string): string {
  if (typeof token !== "string" || token.length === 0 || token.length > MAX_JOIN_JWT_LENGTH) throw new MandateError("INVALID_JWT", "missing or oversized join token");
  let iss: unknown;
  try {
    decodeProtectedHeader(token);
    iss = decodeJwt(token).iss;
  } catch {
    throw new MandateError("INVALID_JWT", "the join token is not a compact JWT");
  }
  if (typeof iss !== "string" || iss.length === 0) throw new MandateError("INVALID_JWT", "the join token has no iss claim");
  return iss;
}

/** Turns jose's failures into stable codes and messages that say what to fix. */
function explain(error: unknown, rule: JoinRule): MandateError {
  if (error instanceof MandateError) return error;
  if (error instanceof errors.JWTExpired) return new MandateError("JWT_EXPIRED", "the join token has expired; give the daemon a fresh one (Kubernetes and CI refresh them)");
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "aud") return new MandateError("JWT_AUDIENCE_MISMATCH", `the join token's audience is not ${JSON.stringify(rule.audience)}; request the token for that audience`);
    if (error.claim === "iss") return new MandateError("INVALID_JWT", `the join token's issuer is not ${rule.issuer}`);
    if (error.claim === "nbf") return new MandateError("INVALID_JWT", "the join token is not valid yet (nbf in the future); check the clocks");
    return new MandateError("INVALID_JWT", `the join token's ${error.claim} claim is missing or invalid`);
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return new MandateError("INVALID_JWT", `the join token's algorithm is not allowed; accepted: ${JOIN_TOKEN_ALGORITHMS.join(", ")}`);
  if (error instanceof errors.JWSSignatureVerificationFailed || error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) {
    return new MandateError("INVALID_JWT", `the join token's signature does not verify with the keys of join rule ${rule.id} (issuer ${rule.issuer})`);
  }
  if (error instanceof errors.JWKSTimeout || error instanceof errors.JWKSInvalid) return new MandateError("CONNECTION_FAILED", `could not fetch the signing keys of ${rule.issuer}: ${(error as Error).message}`);
  if (error instanceof errors.JOSEError) return new MandateError("INVALID_JWT", `the join token is not valid: ${(error as Error).message}`);
  return new MandateError("CONNECTION_FAILED", `could not verify the join token against ${rule.issuer}: ${(error as Error).message}`);
}

/**
 * Verifies OIDC join tokens against a rule's keys: inline JWKS, a JWKS URL, or the issuer's
 * OIDC discovery document. Remote key sets are cached per URL (jose refetches on an unknown
 * kid, with a cooldown), so a burst of joins does not hammer the issuer.
 */
export class JoinTokenVerifier {
  private readonly remote = new Map<string, JWTVerifyGetKey>();
  private readonly discovered = new Map<string, { jwksUri: string; at: number }>();

  constructor(private readonly now: () => number = Date.now) {}

  async verify(rule: JoinRule, token: string): Promise<JWTPayload> {
    try {
      const keys = rule.jwks ? createLocalJWKSet(rule.jwks as never) : await this.remoteKeys(rule);
      const { payload } = await jwtVerify(token, keys, {
        issuer: rule.issuer,
        audience: rule.audience,
        algorithms: JOIN_TOKEN_ALGORITHMS,
        requiredClaims: ["exp", "iss", "aud"],
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(this.now()),
      });
      return payload;
    } catch (error) {
      throw explain(error, rule);
    }
  }

  private async remoteKeys(rule: JoinRule): Promise<JWTVerifyGetKey> {
    const url = rule.jwksUrl ?? (await this.discoverJwksUri(rule.issuer));
    let keys = this.remote.get(url);
    if (!keys) {
      keys = createRemoteJWKSet(new URL(url), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 });
      this.remote.set(url, keys);
    }
    return keys;
  }

  private async discoverJwksUri(issuer: string): Promise<string> {
    const cached = this.discovered.get(issuer);
    if (cached && this.now() - cached.at < DISCOVERY_TTL_MS) return cached.jwksUri;
    const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
    let document: { issuer?: unknown; jwks_uri?: unknown };
    try {
      const response = await fetch(validateFetchUrl(url, "the issuer's discovery URL"), { redirect: "error", signal: AbortSignal.timeout(5000) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      document = (await response.json()) as typeof document;
    } catch (error) {
      throw new MandateError("CONNECTION_FAILED", `OIDC discovery at ${url} failed (${(error as Error).message}); give the rule --jwks-file or --jwks-url instead`);
    }
    // OIDC Discovery §4.3: the document must name the very issuer it was fetched for.
    if (document.issuer !== issuer) throw new MandateError("INVALID_JWT", `the discovery document at ${url} names issuer ${JSON.stringify(document.issuer)}, not ${issuer}`);
    if (typeof document.jwks_uri !== "string") throw new MandateError("CONNECTION_FAILED", `the discovery document at ${url} has no jwks_uri`);
    const jwksUri = validateFetchUrl(document.jwks_uri, "the issuer's jwks_uri");
    this.discovered.set(issuer, { jwksUri, at: this.now() });
    return jwksUri;
  }
}
