import { type KeyObject, randomUUID, sign } from "node:crypto";
import * as jose from "jose";
import { MandateError } from "../errors/index.js";
import type { JwtAuthority, JwtBundle } from "./bundle.js";
import { type SpiffeId, parseSpiffeId } from "./spiffe-id.js";

/** The asymmetric algorithms JWT-SVID §2.1 allows; none, HS* and EdDSA are not among them. */
export const JWT_SVID_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"] as const;
export type JwtSvidAlgorithm = (typeof JWT_SVID_ALGORITHMS)[number];

const EC_CURVE_FOR_ALG: Record<string, string> = { ES256: "P-256", ES384: "P-384", ES512: "P-521" };
const HEADER_FIELDS = new Set(["alg", "kid", "typ"]);
/** `jti` is ours too: a caller-chosen id would let two tokens share one. */
const RESERVED_CLAIMS = new Set(["sub", "aud", "exp", "iat", "jti"]);
const MAX_TOKEN_LENGTH = 16 * 1024;
const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * JWT-SVIDs live minutes, so the allowance must stay well below a lifetime while
 * covering NTP-synchronised hosts; 30 s is half of the common 60 s JWT leeway.
 */
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30;
const MAX_CLOCK_TOLERANCE_SECONDS = 300;

export interface MintJwtSvidInput {
  spiffeId: string;
  audience: string[];
  ttlSeconds: number;
  now?: Date;
  claims?: Record<string, unknown>;
}

export interface JwtSvidSigner {
  readonly kid: string;
  mintJwtSvid(input: MintJwtSvidInput): Promise<string>;
}

function badArgument(message: string): MandateError {
  return new MandateError("INVALID_ARGUMENT", message);
}

function signOnThreadpool(data: Buffer, key: KeyObject): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    sign("sha256", data, { key, dsaEncoding: "ieee-p1363" }, (error, signature) => (error ? reject(error) : resolve(signature)));
  });
}

/**
 * Mints ES256 JWT-SVIDs. A general JWT library re-encodes the header and re-imports
 * the key per token; here the header is encoded once and signing runs on the libuv
 * threadpool, so a token costs one P-256 signature plus a little JSON.
 */
export function createJwtSvidSigner(key: { kid: string; privateKey: KeyObject }): JwtSvidSigner {
  if (typeof key.kid !== "string" || key.kid.length === 0) throw badArgument("a JWT-SVID signing key needs a kid");
  if (key.privateKey?.type !== "private" || key.privateKey.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw badArgument("a JWT-SVID signing key must be an ECDSA P-256 private key (ES256)");
  }
  const { kid, privateKey } = key;
  const encodedHeader = `${Buffer.from(JSON.stringify({ alg: "ES256", kid, typ: "JWT" })).toString("base64url")}.`;
  return {
    kid,
    async mintJwtSvid(input: MintJwtSvidInput): Promise<string> {
      const sub = parseSpiffeId(input.spiffeId).uri;
      const { audience, ttlSeconds } = input;
      if (!Array.isArray(audience) || audience.length === 0) throw badArgument("a JWT-SVID needs at least one audience");
      for (const value of audience) if (typeof value !== "string" || value.length === 0) throw badArgument("each JWT-SVID audience must be a non-empty string");
      if (typeof ttlSeconds !== "number" || !Number.isFinite(ttlSeconds) || ttlSeconds <= 0) throw badArgument("JWT-SVID lifetime must be a positive number of seconds");
      const nowMs = (input.now ?? new Date()).getTime();
      if (!Number.isFinite(nowMs)) throw badArgument("invalid issuance time");
      const iat = Math.floor(nowMs / 1000);
      const claims = input.claims ?? {};
      if (typeof claims !== "object" || claims === null || Array.isArray(claims)) throw badArgument("extra JWT-SVID claims must be an object");
      const extra: Record<string, unknown> = {};
      for (const name of Object.keys(claims)) {
        // defineProperty, not assignment, so a "__proto__" claim stays a plain claim.
        if (!RESERVED_CLAIMS.has(name)) Object.defineProperty(extra, name, { value: claims[name], enumerable: true });
      }
      const payload = { sub, aud: audience, exp: iat + Math.ceil(ttlSeconds), iat, jti: randomUUID(), ...extra };
      const signingInput = encodedHeader + Buffer.from(JSON.stringify(payload)).toString("base64url");
      const signature = await signOnThreadpool(Buffer.from(signingInput, "latin1"), privateKey);
      return `${signingInput}.${signature.toString("base64url")}`;
    },
  };
}

export interface VerifyJwtSvidOptions {
  /** The audience this validator identifies with; the token's `aud` must contain it. */
  audience: string;
  /** The JWT bundle of one trust domain; only the bundle of `sub`'s own trust domain is ever asked for. */
  jwtBundleFor: (trustDomain: string) => JwtBundle | undefined;
  now?: Date;
  /** Allowed clock difference for exp, nbf and iat; defaults to DEFAULT_CLOCK_TOLERANCE_SECONDS. */
  clockToleranceSeconds?: number;
}

export interface VerifiedJwtSvid {
  spiffeId: SpiffeId;
  claims: jose.JWTPayload;
  /** The kid of the bundle key that verified the token (also when the header had none). */
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
    throw invalid(`the ${what} is not base64url-encoded JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw invalid(`the ${what} is not a JSON object`);
  return value as Record<string, unknown>;
}

function isAllowedAlgorithm(alg: unknown): alg is JwtSvidAlgorithm {
  return typeof alg === "string" && (JWT_SVID_ALGORITHMS as readonly string[]).includes(alg);
}

/** JWT-SVID §2: only alg, kid and typ, so a `crit`, `jku`, `x5u`, `jwk` or `b64` never reaches the library. */
function checkHeader(header: Record<string, unknown>): { alg: JwtSvidAlgorithm; kid: string | undefined } {
  for (const name of Object.keys(header)) {
    if (name === "crit") throw invalid(`critical header extensions ${JSON.stringify(header.crit)} are not understood`);
    if (!HEADER_FIELDS.has(name)) throw invalid(`header parameter ${JSON.stringify(name)} is not allowed (only alg, kid and typ)`);
  }
  if (!isAllowedAlgorithm(header.alg)) throw invalid(`algorithm ${JSON.stringify(header.alg)} is not allowed; use one of ${JWT_SVID_ALGORITHMS.join(", ")}`);
  if (header.typ !== undefined && header.typ !== "JWT" && header.typ !== "JOSE") throw invalid(`typ ${JSON.stringify(header.typ)} is neither JWT nor JOSE`);
  if (header.kid !== undefined && typeof header.kid !== "string") throw invalid("kid is not a string");
  return { alg: header.alg, kid: header.kid };
}

function keyFits(alg: JwtSvidAlgorithm, key: JwtAuthority): boolean {
  if (alg.startsWith("ES")) return key.kty === "EC" && key.jwk.crv === EC_CURVE_FOR_ALG[alg];
  return key.kty === "RSA";
}

function describeKey(key: JwtAuthority): string {
  return key.kty === "EC" ? `an EC ${String(key.jwk.crv)} key` : `an ${key.kty} key`;
}

function candidateKeys(bundle: JwtBundle, alg: JwtSvidAlgorithm, kid: string | undefined, trustDomain: string): JwtAuthority[] {
  if (kid !== undefined) {
    const key = bundle.get(kid);
    if (!key) throw invalid(`kid ${JSON.stringify(kid)} is not in the bundle of trust domain ${trustDomain}`);
    if (!keyFits(alg, key)) throw invalid(`kid ${JSON.stringify(kid)} is ${describeKey(key)} and cannot verify ${alg}`);
    return [key];
  }
  const keys = [...bundle.values()].filter((key) => keyFits(alg, key));
  if (keys.length === 0) throw invalid(`no key in the bundle of trust domain ${trustDomain} can verify ${alg}`);
  return keys;
}

function checkOptions(options: VerifyJwtSvidOptions): { now: Date; tolerance: number } {
  if (typeof options.audience !== "string" || options.audience.length === 0) throw badArgument("a JWT-SVID validator needs a non-empty audience");
  if (typeof options.jwtBundleFor !== "function") throw badArgument("a JWT-SVID validator needs a bundle source");
  const now = options.now ?? new Date();
  if (!Number.isFinite(now.getTime())) throw badArgument("invalid validation time");
  const tolerance = options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS;
  if (!Number.isFinite(tolerance) || tolerance < 0 || tolerance > MAX_CLOCK_TOLERANCE_SECONDS) {
    throw badArgument(`clock tolerance must be between 0 and ${MAX_CLOCK_TOLERANCE_SECONDS} seconds`);
  }
  return { now, tolerance };
}

/**
 * Verifies a JWT-SVID (JWT-SVID §2–5), stricter than a general JWT library's
 * defaults: compact form only, header limited to alg/kid/typ, the algorithm pinned to
 * the allowed asymmetric set and to the key, the key taken only from the bundle of
 * `sub`'s own trust domain, and aud/exp required.
 */
export async function verifyJwtSvid(token: string, options: VerifyJwtSvidOptions): Promise<VerifiedJwtSvid> {
  const { now, tolerance } = checkOptions(options);
  if (typeof token !== "string" || token.length === 0) throw invalid("the token is empty");
  if (token.length > MAX_TOKEN_LENGTH) throw invalid(`the token is longer than ${MAX_TOKEN_LENGTH} characters`);
  if (!COMPACT.test(token)) throw invalid("not a JWS compact serialization (three non-empty base64url segments)");
  const [headerSegment, payloadSegment] = token.split(".") as [string, string, string];
  const { alg, kid } = checkHeader(decodeSegment(headerSegment, "header"));

  // The signing key depends on sub's trust domain, so sub is read before the signature is checked; nothing else is trusted yet.
  const unverified = decodeSegment(payloadSegment, "payload");
  if (typeof unverified.sub !== "string") throw invalid("sub is missing or not a string");
  let spiffeId: SpiffeId;
  try {
    spiffeId = parseSpiffeId(unverified.sub);
  } catch (error) {
    throw invalid(`sub is not a SPIFFE ID: ${(error as Error).message}`);
  }
  const bundle = options.jwtBundleFor(spiffeId.trustDomain);
  if (!bundle) throw invalid(`there is no JWT bundle for trust domain ${spiffeId.trustDomain}`);

  let lastError: unknown;
  for (const key of candidateKeys(bundle, alg, kid, spiffeId.trustDomain)) {
    let payload: jose.JWTPayload;
    try {
      ({ payload } = await jose.jwtVerify(token, key.publicKey, {
        algorithms: [alg],
        audience: options.audience,
        requiredClaims: ["exp", "sub", "aud"],
        currentDate: now,
        clockTolerance: tolerance,
      }));
    } catch (error) {
      lastError = error;
      // Without a kid each fitting key is tried; any failure other than the signature is final.
      if (error instanceof jose.errors.JWSSignatureVerificationFailed) continue;
      break;
    }
    // A token from the future means a skewed issuer clock; accepting it would stretch its lifetime.
    if (typeof payload.iat === "number" && payload.iat > now.getTime() / 1000 + tolerance) {
      throw invalid(`issued in the future (iat ${describeTime(payload.iat)}); check the issuer's clock`);
    }
    const expiresAt = new Date(payload.exp! * 1000);
    // jose accepts any number; a date JavaScript cannot represent is not a lifetime we honour.
    if (Number.isNaN(expiresAt.getTime())) throw invalid("exp is out of range");
    return { spiffeId, claims: payload, kid: key.kid, expiresAt };
  }
  throw fromJoseError(lastError, spiffeId.trustDomain);
}

function fromJoseError(error: unknown, trustDomain: string): MandateError {
  if (error instanceof MandateError) return error;
  if (error instanceof jose.errors.JWTExpired) {
    const exp = error.payload.exp;
    return new MandateError("JWT_EXPIRED", `JWT-SVID expired at ${describeTime(exp)}`);
  }
  if (error instanceof jose.errors.JWTClaimValidationFailed) {
    const missing = error.reason === "missing";
    if (error.claim === "aud") {
      return new MandateError("JWT_AUDIENCE_MISMATCH", missing ? "JWT-SVID rejected: aud is missing" : `JWT-SVID rejected: aud ${JSON.stringify(error.payload.aud)} does not contain this validator's audience`);
    }
    if (error.claim === "nbf" && typeof error.payload.nbf === "number") return invalid(`not valid before ${describeTime(error.payload.nbf)} (nbf)`);
    return invalid(missing ? `${error.claim} is missing` : `${error.claim} is invalid: ${error.message}`);
  }
  if (error instanceof jose.errors.JWSSignatureVerificationFailed) return invalid(`the signature does not verify with the bundle of trust domain ${trustDomain}`);
  if (error instanceof Error) return invalid(error.message);
  return invalid("unreadable token");
}

/** A NumericDate for messages: ISO when representable, the raw value otherwise (hostile tokens carry any number). */
function describeTime(seconds: unknown): string {
  if (typeof seconds !== "number") return String(seconds);
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString();
}
