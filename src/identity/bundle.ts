import { type JsonWebKey, type KeyObject, X509Certificate, createPublicKey } from "node:crypto";
import { MandateError } from "../errors/index.js";
import { validateTrustDomain } from "./spiffe-id.js";

/** One JWT-SVID signing key of a trust domain. `jwk` holds only public parameters, never `use` or `kid`. */
export interface JwtAuthority {
  kid: string;
  kty: string;
  jwk: JsonWebKey;
  publicKey: KeyObject;
}

/** kid → key, for exactly one trust domain. */
export type JwtBundle = Map<string, JwtAuthority>;

export interface SpiffeBundle {
  trustDomain: string;
  x509Authorities: X509Certificate[];
  jwtBundle: JwtBundle;
  sequence?: number;
  refreshHintSeconds?: number;
}

export interface SpiffeBundleJwk extends JsonWebKey {
  kty: string;
  use: "x509-svid" | "jwt-svid";
  kid?: string;
  x5c?: string[];
}

export interface SpiffeBundleDocument {
  keys: SpiffeBundleJwk[];
  spiffe_sequence: number;
  spiffe_refresh_hint: number;
}

export const MAX_BUNDLE_BYTES = 1024 * 1024;
export const MAX_BUNDLE_KEYS = 1000;

/**
 * `oct` is deliberately absent: a symmetric key in a public document is either a
 * mistake or an attack (HMAC with a "public" secret), so it counts as unknown.
 */
const SUPPORTED_KTY = new Set(["EC", "RSA", "OKP"]);
const STANDARD_BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

function badInput(reason: string): MandateError {
  return new MandateError("INVALID_ARGUMENT", `cannot build SPIFFE bundle: ${reason}`);
}

function invalid(reason: string): MandateError {
  return new MandateError("INVALID_BUNDLE", `invalid SPIFFE bundle: ${reason}`);
}

/** Exports only the public half, so a private KeyObject passed by mistake cannot leak `d`. */
function publicJwk(key: KeyObject): JsonWebKey {
  const publicKey = key.type === "private" ? createPublicKey(key) : key;
  if (publicKey.type !== "public") throw badInput("a symmetric key cannot be published");
  return publicKey.export({ format: "jwk" });
}

function isPositiveOrZeroInteger(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/**
 * The bundle document (SPIFFE Trust Domain and Bundle §4, X509-SVID §6.1, JWT-SVID
 * bundle section): X.509 authorities carry `use: x509-svid`, exactly one `x5c` and no
 * `kid`; JWT authorities carry `use: jwt-svid` and a `kid`.
 */
export function buildSpiffeBundle(input: {
  x509Authorities: Buffer[];
  jwtAuthorities: { kid: string; publicKey: KeyObject }[];
  sequence: number;
  refreshHintSeconds: number;
}): SpiffeBundleDocument {
  if (!isPositiveOrZeroInteger(input.sequence)) throw badInput("sequence must be a non-negative integer");
  if (!isPositiveOrZeroInteger(input.refreshHintSeconds) || input.refreshHintSeconds === 0) throw badInput("refresh hint must be a positive whole number of seconds");
  const keys: SpiffeBundleJwk[] = [];
  for (const der of input.x509Authorities) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(der);
    } catch {
      throw badInput("an X.509 authority is not a DER certificate");
    }
    if (!cert.ca) throw badInput(`X.509 authority ${cert.subject || cert.serialNumber} is not a CA certificate`);
    const jwk = publicJwk(cert.publicKey);
    keys.push({ ...jwk, kty: jwk.kty!, use: "x509-svid", x5c: [cert.raw.toString("base64")] });
  }
  const kids = new Set<string>();
  for (const { kid, publicKey } of input.jwtAuthorities) {
    if (typeof kid !== "string" || kid.length === 0) throw badInput("a JWT authority has no kid");
    if (kids.has(kid)) throw badInput(`two JWT authorities share kid ${JSON.stringify(kid)}`);
    kids.add(kid);
    const jwk = publicJwk(publicKey);
    // JWT-SVID algorithms are RSA and NIST-curve ECDSA only; any other key would be unusable by every verifier.
    if (jwk.kty !== "RSA" && !(jwk.kty === "EC" && (jwk.crv === "P-256" || jwk.crv === "P-384" || jwk.crv === "P-521"))) {
      throw badInput(`JWT authority ${JSON.stringify(kid)} is not an RSA or P-256/384/521 key`);
    }
    keys.push({ ...jwk, kty: jwk.kty, use: "jwt-svid", kid });
  }
  return { keys, spiffe_sequence: input.sequence, spiffe_refresh_hint: input.refreshHintSeconds };
}

export function parseSpiffeBundleText(text: string, trustDomain: string): SpiffeBundle {
  if (typeof text !== "string") throw invalid("not text");
  // The length check first avoids counting bytes of an absurdly long string.
  if (text.length > MAX_BUNDLE_BYTES || Buffer.byteLength(text) > MAX_BUNDLE_BYTES) throw invalid(`larger than ${MAX_BUNDLE_BYTES} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalid("not JSON");
  }
  return parseSpiffeBundle(json, trustDomain);
}

function optionalInteger(document: Record<string, unknown>, name: string): number | undefined {
  const value = document[name];
  if (value === undefined || value === null) return undefined;
  if (!isPositiveOrZeroInteger(value)) throw invalid(`${name} is not a non-negative integer`);
  return value;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function importJwk(key: Record<string, unknown>): KeyObject | undefined {
  const { use: _use, kid: _kid, x5c: _x5c, ...params } = key;
  try {
    const imported = createPublicKey({ key: params as JsonWebKey, format: "jwk" });
    return imported.type === "public" ? imported : undefined;
  } catch {
    return undefined;
  }
}

function readX509Authority(key: Record<string, unknown>, where: string): X509Certificate | undefined {
  if (!Array.isArray(key.x5c) || key.x5c.length === 0) return undefined;
  const first: unknown = key.x5c[0];
  if (typeof first !== "string" || !STANDARD_BASE64.test(first)) throw invalid(`${where}: x5c[0] is not standard base64`);
  const der = Buffer.from(first, "base64");
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch {
    throw invalid(`${where}: x5c[0] is not a DER certificate`);
  }
  if (!cert.raw.equals(der)) throw invalid(`${where}: x5c[0] has bytes after the certificate`);
  // RFC 7517 §4.7: the certificate's key must be the key the JWK describes, or the entry is ambiguous.
  const described = importJwk(key);
  if (!described) throw invalid(`${where}: its ${String(key.kty)} parameters are not a public key`);
  const spki = (k: KeyObject) => k.export({ type: "spki", format: "der" });
  if (!spki(described).equals(spki(cert.publicKey))) throw invalid(`${where}: its key parameters do not match its x5c certificate`);
  return cert;
}

function readJwtAuthority(key: Record<string, unknown>, where: string): JwtAuthority {
  if (typeof key.kid !== "string" || key.kid.length === 0) throw invalid(`${where}: a jwt-svid key has no kid`);
  const publicKey = importJwk(key);
  if (!publicKey) throw invalid(`${where}: jwt-svid key ${JSON.stringify(key.kid)} is not a valid public key`);
  return { kid: key.kid, kty: key.kty as string, jwk: publicKey.export({ format: "jwk" }), publicKey };
}

/**
 * Reads a bundle as a consumer must: keys with an unknown `kty` or an unknown or
 * missing `use` are ignored (Trust Domain and Bundle §4.1.3, §4.2); for x509-svid
 * entries only `x5c[0]` counts and an entry with no `x5c` is ignored (X509-SVID §6.2);
 * `keys: []` is valid and means "trust nothing from this trust domain". Anything
 * structurally wrong rejects the whole document rather than half-trusting it.
 */
export function parseSpiffeBundle(json: unknown, trustDomain: string): SpiffeBundle {
  validateTrustDomain(trustDomain);
  if (!isObject(json)) throw invalid("not a JSON object");
  if (!Array.isArray(json.keys)) throw invalid("the keys array is missing");
  if (json.keys.length > MAX_BUNDLE_KEYS) throw invalid(`${json.keys.length} keys; at most ${MAX_BUNDLE_KEYS} are accepted`);
  const bundle: SpiffeBundle = { trustDomain, x509Authorities: [], jwtBundle: new Map() };
  const sequence = optionalInteger(json, "spiffe_sequence");
  if (sequence !== undefined) bundle.sequence = sequence;
  const refreshHint = optionalInteger(json, "spiffe_refresh_hint");
  if (refreshHint !== undefined) bundle.refreshHintSeconds = refreshHint;
  const seenCerts = new Set<string>();
  json.keys.forEach((entry: unknown, index: number) => {
    const where = `keys[${index}]`;
    if (!isObject(entry)) throw invalid(`${where} is not a JSON object`);
    if (typeof entry.kty !== "string" || !SUPPORTED_KTY.has(entry.kty)) return;
    if (entry.use === "x509-svid") {
      const cert = readX509Authority(entry, where);
      if (cert && !seenCerts.has(cert.fingerprint256)) {
        seenCerts.add(cert.fingerprint256);
        bundle.x509Authorities.push(cert);
      }
    } else if (entry.use === "jwt-svid") {
      const authority = readJwtAuthority(entry, where);
      if (bundle.jwtBundle.has(authority.kid)) throw invalid(`${where}: kid ${JSON.stringify(authority.kid)} appears twice`);
      bundle.jwtBundle.set(authority.kid, authority);
    }
  });
  return bundle;
}

/** The JWT bundle as an agent writes it (`jwt_bundle.json`): only jwt-svid keys. */
export function jwtBundleToJson(bundle: JwtBundle): { keys: SpiffeBundleJwk[] } {
  return { keys: [...bundle.values()].map((a) => ({ ...a.jwk, kty: a.kty, use: "jwt-svid", kid: a.kid })) };
}

/** The X.509 authorities as concatenated PEM (`bundle.pem`). */
export function x509AuthoritiesToPem(certs: X509Certificate[]): string {
  return certs.map((cert) => cert.toString()).join("");
}
