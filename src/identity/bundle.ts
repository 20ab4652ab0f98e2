import { type KeyObject, X509Certificate, createPublicKey } from "node:crypto";
import { MandateError } from "../errors/index.js";
import { validateTrustDomain } from "./spiffe-id.js";
import { certToPem } from "./x509-util.js";

/** One JWT signing key of a trust domain. */
export interface JwtAuthority {
  kid: string;
  kty: string;
  jwk: Record<string, unknown>;
  publicKey: KeyObject;
}

/** kid → key, for one trust domain. */
export type JwtBundle = Map<string, JwtAuthority>;

export interface SpiffeBundle {
  trustDomain: string;
  x509Authorities: X509Certificate[];
  jwtBundle: JwtBundle;
  sequence?: number;
  refreshHintSeconds?: number;
}

export const MAX_BUNDLE_BYTES = 1024 * 1024;
const MAX_BUNDLE_KEYS = 1000;
const KNOWN_KTY = new Set(["EC", "RSA", "OKP"]);

function publicJwk(key: KeyObject): Record<string, unknown> {
  return key.export({ format: "jwk" }) as Record<string, unknown>;
}

/**
 * The SPIFFE bundle document (SPIFFE Trust Domain and Bundle §4): a JWKS whose X.509
 * authorities carry `use: x509-svid` and exactly one `x5c` (and no `kid`), and whose
 * JWT authorities carry `use: jwt-svid` and a `kid`.
 */
export function buildSpiffeBundle(input: { x509Authorities: Buffer[]; jwtAuthorities: { kid: string; publicKey: KeyObject }[]; sequence: number; refreshHintSeconds: number }) {
  return {
    keys: [
      ...input.x509Authorities.map((der) => ({ ...publicJwk(new X509Certificate(der).publicKey), use: "x509-svid", x5c: [der.toString("base64")] })),
      ...input.jwtAuthorities.map((a) => ({ ...publicJwk(a.publicKey), use: "jwt-svid", kid: a.kid })),
    ],
    spiffe_sequence: input.sequence,
    spiffe_refresh_hint: input.refreshHintSeconds,
  };
}

function invalid(reason: string): MandateError {
  return new MandateError("INVALID_BUNDLE", `invalid SPIFFE bundle: ${reason}`);
}

export function parseSpiffeBundleText(text: string, trustDomain: string): SpiffeBundle {
  if (Buffer.byteLength(text) > MAX_BUNDLE_BYTES) throw invalid(`larger than ${MAX_BUNDLE_BYTES} bytes`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalid("not JSON");
  }
  return parseSpiffeBundle(json, trustDomain);
}

/**
 * Reads a bundle as a consumer must: keys with an unknown `kty` or an unknown or
 * missing `use` are skipped, not fatal; `x5c[0]` is the authority and entries with an
 * empty `x5c` are skipped; `keys: []` is valid and means "trust nothing".
 */
export function parseSpiffeBundle(json: unknown, trustDomain: string): SpiffeBundle {
  validateTrustDomain(trustDomain);
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw invalid("not a JSON object");
  const document = json as Record<string, unknown>;
  if (!Array.isArray(document.keys)) throw invalid("missing the keys array");
  if (document.keys.length > MAX_BUNDLE_KEYS) throw invalid(`more than ${MAX_BUNDLE_KEYS} keys`);
  const bundle: SpiffeBundle = { trustDomain, x509Authorities: [], jwtBundle: new Map() };
  if (document.spiffe_sequence !== undefined) {
    if (!Number.isSafeInteger(document.spiffe_sequence) || (document.spiffe_sequence as number) < 0) throw invalid("spiffe_sequence is not a non-negative integer");
    bundle.sequence = document.spiffe_sequence as number;
  }
  if (document.spiffe_refresh_hint !== undefined) {
    if (typeof document.spiffe_refresh_hint !== "number" || !(document.spiffe_refresh_hint >= 0)) throw invalid("spiffe_refresh_hint is not a non-negative number");
    bundle.refreshHintSeconds = document.spiffe_refresh_hint;
  }
  for (const entry of document.keys) {
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) continue;
    const key = entry as Record<string, unknown>;
    if (typeof key.kty !== "string" || !KNOWN_KTY.has(key.kty)) continue;
    if (key.use === "x509-svid") {
      if (!Array.isArray(key.x5c) || key.x5c.length === 0 || typeof key.x5c[0] !== "string") continue;
      try {
        bundle.x509Authorities.push(new X509Certificate(Buffer.from(key.x5c[0], "base64")));
      } catch {
        throw invalid("an x509-svid key has an unreadable x5c certificate");
      }
    } else if (key.use === "jwt-svid") {
      if (typeof key.kid !== "string" || key.kid.length === 0) throw invalid("a jwt-svid key has no kid");
      if (bundle.jwtBundle.has(key.kid)) throw invalid(`duplicate kid ${key.kid}`);
      const { use: _use, ...jwk } = key;
      let publicKey: KeyObject;
      try {
        publicKey = createPublicKey({ key: jwk as import("node:crypto").JsonWebKey, format: "jwk" });
      } catch {
        throw invalid(`jwt-svid key ${key.kid} is not a valid public key`);
      }
      if (publicKey.type !== "public") throw invalid(`jwt-svid key ${key.kid} is not a public key`);
      bundle.jwtBundle.set(key.kid, { kid: key.kid, kty: key.kty, jwk, publicKey });
    }
  }
  return bundle;
}

/** The JWT bundle as an agent writes it (`jwt_bundle.json`): only jwt-svid keys. */
export function jwtBundleToJson(bundle: JwtBundle): { keys: Record<string, unknown>[] } {
  return { keys: [...bundle.values()].map((a) => ({ ...a.jwk, use: "jwt-svid", kid: a.kid })) };
}

export function x509AuthoritiesToPem(certs: X509Certificate[]): string {
  return certs.map((c) => certToPem(c.raw)).join("");
}
