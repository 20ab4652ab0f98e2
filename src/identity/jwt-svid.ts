import { type KeyObject, randomBytes, sign } from "node:crypto";
import * as jose from "jose";
import { MandateError } from "../errors/index.js";
import type { JwtBundle } from "./bundle.js";
import { type SpiffeId, parseSpiffeId } from "./spiffe-id.js";

/** The asymmetric algorithms the JWT-SVID standard allows; none, HS* and EdDSA are not among them. */
export const JWT_SVID_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"] as const;
const ALLOWED = new Set<string>(JWT_SVID_ALGORITHMS);
const KTY_FOR_ALG: Record<string, string> = { RS: "RSA", PS: "RSA", ES: "EC" };
const HEADER_FIELDS = new Set(["alg", "kid", "typ"]);
const MAX_TOKEN_LENGTH = 16 * 1024;
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
const PROTECTED_CLAIMS = new Set(["sub", "aud", "exp", "iat"]);

export interface MintJwtSvidInput {
  spiffeId: string;
  audience: string[];
  ttlSeconds: number;
  now?: Date;
  claims?: Record<string, unknown>;
}

/**
 * Mints ES256 JWT-SVIDs. The header is encoded once per key, and signing runs on the
 * threadpool with node:crypto, so minting costs one P-256 signature and a little JSON.
 */
export function createJwtSvidSigner(key: { kid: string; privateKey: KeyObject }) {
  if (key.privateKey.asymmetricKeyDetails?.namedCurve !== "prime256v1") throw new MandateError("CA_UNAVAILABLE", "JWT-SVID keys are ECDSA P-256 (ES256)");
  const header = Buffer.from(JSON.stringify({ alg: "ES256", kid: key.kid, typ: "JWT" })).toString("base64url");
  return {
    kid: key.kid,
    async mintJwtSvid(input: MintJwtSvidInput): Promise<string> {
      if (!Array.isArray(input.audience) || input.audience.length === 0) throw new MandateError("INVALID_ARGUMENT", "a JWT-SVID needs at least one audience");
      if (!(input.ttlSeconds > 0)) throw new MandateError("INVALID_ARGUMENT", "JWT-SVID lifetime must be positive");
      const iat = Math.floor((input.now ?? new Date()).getTime() / 1000);
      const extra: Record<string, unknown> = {};
      for (const [name, value] of Object.entries(input.claims ?? {})) if (!PROTECTED_CLAIMS.has(name)) extra[name] = value;
      const payload = { ...extra, sub: input.spiffeId, aud: input.audience, exp: iat + Math.floor(input.ttlSeconds), iat, jti: randomBytes(12).toString("base64url") };
      const signingInput = `${header}.${Buffer.from(JSON.stringify(payload)).toString("base64url")}`;
      const signature = await new Promise<Buffer>((resolve, reject) => {
        sign("sha256", Buffer.from(signingInput), { key: key.privateKey, dsaEncoding: "ieee-p1363" }, (error, result) => (error ? reject(error) : resolve(result)));
      });
      return `${signingInput}.${signature.toString("base64url")}`;
    },
  };
}

export interface VerifyJwtSvidOptions {
  audience: string;
  jwtBundleFor: (trustDomain: string) => JwtBundle | undefined;
  now?: Date;
  /** Allowed clock difference for exp/nbf/iat. Small: JWT-SVIDs live minutes, not hours. */
  clockToleranceSeconds?: number;
}

export interface VerifiedJwtSvid {
  spiffeId: SpiffeId;
  claims: jose.JWTPayload;
  kid?: string;
  expiresAt: Date;
}

function invalid(reason: string): MandateError {
  return new MandateError("INVALID_JWT", `JWT-SVID rejected: ${reason}`);
}

function decodeSegment(segment: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
  } catch {
    throw invalid(`${what} is not base64url JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalid(`${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * Verifies a JWT-SVID per the JWT-SVID standard §3–4, stricter than a general JWT
 * library's defaults: compact form only, header limited to alg/kid/typ, the algorithm
 * pinned to the allowed asymmetric set and to the key's type, the key taken only from
 * the bundle of `sub`'s own trust domain, and aud/exp required.
 */
export async function verifyJwtSvid(token: string, options: VerifyJwtSvidOptions): Promise<VerifiedJwtSvid> {
  if (typeof token !== "string" || token.length === 0) throw invalid("empty token");
  if (token.length > MAX_TOKEN_LENGTH) throw invalid("token too long");
  if (!COMPACT.test(token)) throw invalid("not a compact JWS (three base64url segments)");
  const [headerSegment, payloadSegment] = token.split(".") as [string, string, string];
  const header = decodeSegment(headerSegment, "header");
  for (const name of Object.keys(header)) {
    if (name === "crit") throw invalid("critical header extensions are not supported");
    if (!HEADER_FIELDS.has(name)) throw invalid(`unexpected header parameter ${JSON.stringify(name)}`);
  }
  const alg = header.alg;
  if (typeof alg !== "string" || !ALLOWED.has(alg)) throw invalid(`algorithm ${JSON.stringify(alg)} is not allowed`);
  if (header.typ !== undefined && header.typ !== "JWT" && header.typ !== "JOSE") throw invalid(`typ ${JSON.stringify(header.typ)} is not JWT or JOSE`);
  if (header.kid !== undefined && typeof header.kid !== "string") throw invalid("kid is not a string");

  const unverified = decodeSegment(payloadSegment, "payload");
  if (typeof unverified.sub !== "string") throw invalid("sub is missing");
  let spiffeId: SpiffeId;
  try {
    spiffeId = parseSpiffeId(unverified.sub);
  } catch (error) {
    throw invalid(`sub is not a SPIFFE ID (${(error as Error).message})`);
  }
  const bundle = options.jwtBundleFor(spiffeId.trustDomain);
  if (!bundle) throw invalid(`no JWT bundle for trust domain ${spiffeId.trustDomain}`);
  const kty = KTY_FOR_ALG[alg.slice(0, 2)];
  const kid = header.kid as string | undefined;
  let candidates = kid === undefined ? [...bundle.values()].filter((k) => k.kty === kty) : [bundle.get(kid)].filter((k) => k !== undefined);
  if (kid !== undefined && candidates.length === 0) throw invalid(`kid ${JSON.stringify(kid)} is not in the bundle of trust domain ${spiffeId.trustDomain}`);
  candidates = candidates.filter((k) => k.kty === kty);
  if (candidates.length === 0) throw invalid(`no ${kty} key in the bundle of trust domain ${spiffeId.trustDomain} fits ${alg}`);

  const now = options.now ?? new Date();
  const tolerance = options.clockToleranceSeconds ?? 30;
  let lastError: unknown;
  for (const candidate of candidates) {
    try {
      const { payload } = await jose.jwtVerify(token, candidate.publicKey, {
        algorithms: [alg],
        audience: options.audience,
        requiredClaims: ["exp", "sub", "aud"],
        currentDate: now,
        clockTolerance: tolerance,
      });
      if (typeof payload.iat === "number" && payload.iat > now.getTime() / 1000 + tolerance) {
        throw invalid(`issued in the future (iat ${new Date(payload.iat * 1000).toISOString()}); check the clocks`);
      }
      if (Array.isArray(payload.aud) && payload.aud.length === 0) throw invalid("aud is empty");
      return { spiffeId, claims: payload, ...(kid ? { kid } : {}), expiresAt: new Date(payload.exp! * 1000) };
    } catch (error) {
      lastError = error;
      if (!(error instanceof jose.errors.JWSSignatureVerificationFailed)) break;
    }
  }
  throw mapJoseError(lastError);
}

function mapJoseError(error: unknown): MandateError {
  if (error instanceof MandateError) return error;
  if (error instanceof jose.errors.JWTExpired) return new MandateError("JWT_EXPIRED", `JWT-SVID expired (exp ${String(error.payload.exp)})`);
  if (error instanceof jose.errors.JWTClaimValidationFailed) {
    if (error.claim === "aud") return new MandateError("JWT_AUDIENCE_MISMATCH", `JWT-SVID rejected: ${error.reason === "missing" ? "aud is missing" : "audience does not match"}`);
    if (error.claim === "nbf") return invalid("not valid yet (nbf is in the future)");
    return invalid(`${error.claim} ${error.reason === "missing" ? "is missing" : "is invalid"}`);
  }
  if (error instanceof jose.errors.JWSSignatureVerificationFailed) return invalid("signature does not verify");
  if (error instanceof jose.errors.JOSEAlgNotAllowed) return invalid("algorithm not allowed");
  return invalid((error as Error)?.message ?? "unreadable token");
}
