import { MandateError } from "../errors/index.js";

/**
 * SPIFFE ID rules from the SPIFFE-ID standard §2: scheme `spiffe`, a trust domain of
 * [a-z0-9._-] (no userinfo, no port), a path of segments of [a-zA-Z0-9._-] with no
 * empty, `.` or `..` segment, no query or fragment, at most 2048 bytes in all.
 */
export const MAX_SPIFFE_ID_BYTES = 2048;
export const MAX_TRUST_DOMAIN_BYTES = 255;

const TRUST_DOMAIN_CHAR = /^[a-z0-9._-]$/;
const PATH_SEGMENT_CHAR = /^[a-zA-Z0-9._-]$/;

export interface SpiffeId {
  readonly trustDomain: string;
  /** Either "" (the trust domain itself) or "/seg/seg…". */
  readonly path: string;
  /** The canonical `spiffe://td/path` form. */
  readonly uri: string;
}

function invalidId(input: string, reason: string): MandateError {
  return new MandateError("INVALID_SPIFFE_ID", `invalid SPIFFE ID ${JSON.stringify(truncate(input))}: ${reason}`);
}

function truncate(value: string): string {
  return value.length > 120 ? `${value.slice(0, 117)}...` : value;
}

/** Throws INVALID_TRUST_DOMAIN unless `name` is a valid trust domain name. */
export function validateTrustDomain(name: string): string {
  if (name.length === 0) throw new MandateError("INVALID_TRUST_DOMAIN", "trust domain is empty");
  if (Buffer.byteLength(name) > MAX_TRUST_DOMAIN_BYTES) {
    throw new MandateError("INVALID_TRUST_DOMAIN", `trust domain is longer than ${MAX_TRUST_DOMAIN_BYTES} bytes`);
  }
  for (const ch of name) {
    if (!TRUST_DOMAIN_CHAR.test(ch)) {
      throw new MandateError(
        "INVALID_TRUST_DOMAIN",
        `trust domain ${JSON.stringify(truncate(name))} contains ${JSON.stringify(ch)}; only lowercase letters, digits, '.', '-' and '_' are allowed`,
      );
    }
  }
  return name;
}

/** Throws INVALID_SPIFFE_ID unless `path` is "" or a valid `/seg/seg` path. */
export function validatePath(path: string, input = path): string {
  if (path === "") return path;
  if (!path.startsWith("/")) throw invalidId(input, "path must start with '/'");
  const segments = path.slice(1).split("/");
  for (const segment of segments) {
    if (segment === "") throw invalidId(input, "path has an empty segment ('//' or a trailing '/')");
    if (segment === "." || segment === "..") throw invalidId(input, "path has a '.' or '..' segment");
    for (const ch of segment) {
      if (!PATH_SEGMENT_CHAR.test(ch)) {
        throw invalidId(input, `path contains ${JSON.stringify(ch)}; only letters, digits, '.', '-' and '_' are allowed`);
      }
    }
  }
  return path;
}

/**
 * Parses a SPIFFE ID strictly. Written as a scanner rather than with `new URL()`
 * because WHATWG URL parsing normalizes (case, percent-escapes, dot segments) and
 * the standard requires rejecting such input instead.
 */
export function parseSpiffeId(input: string): SpiffeId {
  if (typeof input !== "string") throw invalidId(String(input), "not a string");
  if (input.length === 0) throw invalidId(input, "empty");
  if (Buffer.byteLength(input) > MAX_SPIFFE_ID_BYTES) throw invalidId(input, `longer than ${MAX_SPIFFE_ID_BYTES} bytes`);
  const scheme = "spiffe://";
  if (!input.startsWith(scheme)) {
    if (input.toLowerCase().startsWith(scheme)) throw invalidId(input, "scheme must be lowercase 'spiffe'");
    throw invalidId(input, "scheme must be 'spiffe://'");
  }
  const rest = input.slice(scheme.length);
  if (rest.includes("?")) throw invalidId(input, "query is not allowed");
  if (rest.includes("#")) throw invalidId(input, "fragment is not allowed");
  const slash = rest.indexOf("/");
  const authority = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? "" : rest.slice(slash);
  if (authority.length === 0) throw invalidId(input, "trust domain is empty");
  if (authority.includes("@")) throw invalidId(input, "userinfo is not allowed");
  if (authority.includes(":")) throw invalidId(input, "port is not allowed");
  try {
    validateTrustDomain(authority);
  } catch (error) {
    throw invalidId(input, (error as Error).message);
  }
  validatePath(path, input);
  return { trustDomain: authority, path, uri: input };
}

export function isSpiffeId(input: string): boolean {
  try {
    parseSpiffeId(input);
    return true;
  } catch {
    return false;
  }
}

/** Builds `spiffe://td/seg/seg`, validating every part. */
export function makeSpiffeId(trustDomain: string, ...segments: string[]): SpiffeId {
  validateTrustDomain(trustDomain);
  const path = segments.length === 0 ? "" : `/${segments.join("/")}`;
  return parseSpiffeId(`spiffe://${trustDomain}${path}`);
}

/** Agent names become one path segment, so they follow the segment rules, plus a sane length. */
const AGENT_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

export function validateAgentName(name: string): string {
  if (!AGENT_NAME.test(name)) {
    throw new MandateError(
      "INVALID_ARGUMENT",
      `invalid agent name ${JSON.stringify(truncate(name))}: use 1-63 letters, digits, '.', '-' or '_', starting with a letter or digit`,
    );
  }
  return name;
}

export function agentSpiffeId(trustDomain: string, agentName: string): SpiffeId {
  return makeSpiffeId(trustDomain, "agent", validateAgentName(agentName));
}

/** Returns the user name when `id` is exactly `spiffe://td/user/<name>` (user certificates carry no further path). */
export function userNameOf(id: SpiffeId): string | undefined {
  const segments = id.path.split("/");
  return segments.length === 3 && segments[1] === "user" && segments[2] ? segments[2] : undefined;
}

/** Returns the agent name when `id` is `spiffe://td/agent/<name>[/…]`. */
export function agentNameOf(id: SpiffeId): string | undefined {
  const segments = id.path.split("/");
  return segments[1] === "agent" && segments[2] ? segments[2] : undefined;
}
