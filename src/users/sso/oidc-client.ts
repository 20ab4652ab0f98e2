import { createHash, timingSafeEqual } from "node:crypto";
import { type JWTPayload, type JWTVerifyGetKey, createRemoteJWKSet, errors, jwtVerify } from "jose";
import { MandateError } from "../../errors/index.js";
import { validateFetchUrl } from "../../join/join-rules.js";
import type { SsoProvider } from "./providers.js";

/** Asymmetric signatures only: `none` and HS* (keyed with a value anyone may know) are never accepted. */
export const ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"];
const CLOCK_TOLERANCE_S = 30;
const DISCOVERY_TTL_MS = 3600_000;
const FETCH_TIMEOUT_MS = 10_000;
const MAX_ID_TOKEN_LENGTH = 32 * 1024;

export interface OidcDiscovery {
  issuer: string;
  authorizationEndpoint: string;
  tokenEndpoint: string;
  jwksUri: string;
  algorithms: string[];
}

function failed(message: string, cause?: unknown): MandateError {
  return new MandateError("LOGIN_FAILED", `SSO login failed: ${message}`, { details: { reason: "sso_failed" }, ...(cause ? { cause } : {}) });
}

export function pkceChallenge(verifier: string): string {
  return createHash("sha256").update(verifier).digest("base64url");
}

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * The relying-party half of OpenID Connect, run by the control plane: discovery, the
 * authorization URL (code flow, PKCE S256, state, nonce), the code exchange, and ID
 * token verification (issuer, audience, azp, exp/iat, nonce, pinned algorithms).
 */
export class OidcRelyingParty {
  private readonly discovered = new Map<string, { document: OidcDiscovery; at: number }>();
  private readonly keySets = new Map<string, JWTVerifyGetKey>();

  constructor(private readonly now: () => number = Date.now) {}

  async discover(issuer: string): Promise<OidcDiscovery> {
    const cached = this.discovered.get(issuer);
    if (cached && this.now() - cached.at < DISCOVERY_TTL_MS) return cached.document;
    const url = `${issuer.replace(/\/+$/, "")}/.well-known/openid-configuration`;
    let raw: Record<string, unknown>;
    try {
      const response = await fetch(validateFetchUrl(url, "the provider's discovery URL"), { redirect: "error", signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), headers: { accept: "application/json" } });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      raw = (await response.json()) as Record<string, unknown>;
    } catch (error) {
      throw new MandateError("CONNECTION_FAILED", `OIDC discovery at ${url} failed: ${(error as Error).message}`, { cause: error });
    }
    // OIDC Discovery §4.3: the document must name exactly the issuer it was fetched for.
    if (raw.issuer !== issuer) throw new MandateError("CONFIG_INVALID", `the discovery document at ${url} names issuer ${JSON.stringify(raw.issuer)}, not ${issuer}`);
    for (const field of ["authorization_endpoint", "token_endpoint", "jwks_uri"]) {
      if (typeof raw[field] !== "string") throw new MandateError("CONFIG_INVALID", `the discovery document at ${url} has no ${field}`);
    }
    const methods = raw.code_challenge_methods_supported;
    if (Array.isArray(methods) && !methods.includes("S256")) throw new MandateError("CONFIG_INVALID", `${issuer} does not support PKCE with S256, which Mandate requires`);
    const advertised = Array.isArray(raw.id_token_signing_alg_values_supported) ? (raw.id_token_signing_alg_values_supported as unknown[]).filter((a): a is string => typeof a === "string") : ["RS256"];
    const algorithms = ID_TOKEN_ALGORITHMS.filter((a) => advertised.includes(a));
    if (algorithms.length === 0) throw new MandateError("CONFIG_INVALID", `${issuer} signs ID tokens only with ${advertised.join(", ") || "nothing"}; Mandate accepts ${ID_TOKEN_ALGORITHMS.join(", ")}`);
    const document: OidcDiscovery = {
      issuer,
      authorizationEndpoint: validateFetchUrl(raw.authorization_endpoint as string, "authorization_endpoint"),
      tokenEndpoint: validateFetchUrl(raw.token_endpoint as string, "token_endpoint"),
      jwksUri: validateFetchUrl(raw.jwks_uri as string, "jwks_uri"),
      algorithms,
    };
    this.discovered.set(issuer, { document, at: this.now() });
    return document;
  }

  authorizationUrl(discovery: OidcDiscovery, provider: SsoProvider, input: { redirectUri: string; state: string; nonce: string; codeVerifier: string }): string {
    const url = new URL(discovery.authorizationEndpoint);
    const params = {
      response_type: "code",
      client_id: provider.clientId,
      redirect_uri: input.redirectUri,
      scope: provider.scopes.join(" "),
      state: input.state,
      nonce: input.nonce,
      code_challenge: pkceChallenge(input.codeVerifier),
      code_challenge_method: "S256",
    };
    for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
    return url.toString();
  }

  /** The back-channel code exchange; the client secret (if any) is read from the control plane's environment only now. */
  async exchangeCode(discovery: OidcDiscovery, provider: SsoProvider, input: { code: string; redirectUri: string; codeVerifier: string }, env: NodeJS.ProcessEnv = process.env): Promise<string> {
    const body = new URLSearchParams({ grant_type: "authorization_code", code: input.code, redirect_uri: input.redirectUri, code_verifier: input.codeVerifier });
    const headers: Record<string, string> = { "content-type": "application/x-www-form-urlencoded", accept: "application/json" };
    if (provider.clientSecretEnv) {
      const secret = env[provider.clientSecretEnv];
      if (!secret) throw new MandateError("CONFIG_INVALID", `SSO provider ${provider.name} takes its client secret from $${provider.clientSecretEnv}, which is not set in the control plane's environment`);
      // RFC 6749 §2.3.1: both halves form-encoded before Basic encoding.
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(provider.clientId)}:${encodeURIComponent(secret)}`).toString("base64")}`;
    } else {
      body.set("client_id", provider.clientId);
    }
    let response: Response;
    let json: Record<string, unknown>;
    try {
      response = await fetch(discovery.tokenEndpoint, { method: "POST", headers, body: body.toString(), redirect: "error", signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
      json = (await response.json()) as Record<string, unknown>;
    } catch (error) {
      throw new MandateError("CONNECTION_FAILED", `the token endpoint of ${provider.name} could not be reached: ${(error as Error).message}`, { cause: error });
    }
    if (!response.ok) {
      const description = typeof json.error_description === "string" ? ` (${json.error_description.slice(0, 200)})` : "";
      throw failed(`${provider.name} refused the code: ${String(json.error ?? `HTTP ${response.status}`).slice(0, 100)}${description}`);
    }
    if (typeof json.id_token !== "string" || json.id_token.length > MAX_ID_TOKEN_LENGTH) throw failed(`${provider.name} returned no ID token (is the openid scope granted?)`);
    return json.id_token;
  }

  async verifyIdToken(discovery: OidcDiscovery, provider: SsoProvider, idToken: string, nonce: string): Promise<JWTPayload> {
    let keys = this.keySets.get(discovery.jwksUri);
    if (!keys) {
      keys = createRemoteJWKSet(new URL(discovery.jwksUri), { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 600_000 });
      this.keySets.set(discovery.jwksUri, keys);
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, keys, {
        issuer: discovery.issuer,
        audience: provider.clientId,
        algorithms: discovery.algorithms,
        requiredClaims: ["iss", "sub", "aud", "exp", "iat"],
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(this.now()),
      }));
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw failed("the ID token has expired");
      if (error instanceof errors.JWTClaimValidationFailed) throw failed(`the ID token's ${error.claim} claim is not valid (${error.reason})`);
      if (error instanceof errors.JOSEAlgNotAllowed) throw failed(`the ID token's algorithm is not one of ${discovery.algorithms.join(", ")}`);
      if (error instanceof errors.JOSEError) throw failed(`the ID token does not verify: ${(error as Error).message}`);
      throw new MandateError("CONNECTION_FAILED", `could not verify the ID token of ${provider.name}: ${(error as Error).message}`, { cause: error });
    }
    // OIDC Core §3.1.3.7: with several audiences, azp must name us.
    if (Array.isArray(payload.aud) && payload.aud.length > 1 && payload.azp !== provider.clientId) throw failed("the ID token names several audiences but its azp is not this client");
    if (payload.azp !== undefined && payload.azp !== provider.clientId) throw failed("the ID token's azp is another client");
    if (typeof payload.nonce !== "string" || !sameString(payload.nonce, nonce)) throw failed("the ID token's nonce does not match this login (a replayed or injected token)");
    return payload;
  }
}
