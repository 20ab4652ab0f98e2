import { OAuthProtocolError } from "./errors.js";

const LOOPBACK = new Set(["127.0.0.1", "[::1]", "localhost"]);
const FORBIDDEN_SCHEMES = new Set(["javascript:", "data:", "file:", "vbscript:", "blob:", "about:", "ws:", "wss:", "ftp:"]);

/**
 * Redirect URIs a client may register (OAuth 2.1 §2.3.1, RFC 8252): https anywhere,
 * plain http only to a loopback listener, or an app's private-use scheme. Never a
 * fragment, never credentials, never a scheme a browser would execute.
 */
export function validateRedirectUri(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new OAuthProtocolError("invalid_redirect_uri", `${JSON.stringify(value.slice(0, 200))} is not an absolute URI`);
  }
  if (url.hash || value.includes("#")) throw new OAuthProtocolError("invalid_redirect_uri", "redirect URIs must not have a fragment");
  if (url.username || url.password) throw new OAuthProtocolError("invalid_redirect_uri", "redirect URIs must not carry credentials");
  if (FORBIDDEN_SCHEMES.has(url.protocol)) throw new OAuthProtocolError("invalid_redirect_uri", `the ${url.protocol} scheme is not allowed`);
  if (url.protocol === "http:" && !LOOPBACK.has(url.hostname)) throw new OAuthProtocolError("invalid_redirect_uri", "plain http redirect URIs must point at a loopback address (127.0.0.1, [::1] or localhost)");
  return value;
}

/**
 * Exact match, except that a loopback http redirect may use any port (RFC 8252 §7.3: a
 * native app listens on whatever port the OS gives it).
 */
export function redirectUriMatches(registered: string[], presented: string): boolean {
  if (registered.includes(presented)) return true;
  let url: URL;
  try {
    url = new URL(presented);
  } catch {
    return false;
  }
  if (url.protocol !== "http:" || !LOOPBACK.has(url.hostname)) return false;
  const withoutPort = (u: URL) => `${u.protocol}//${u.hostname}${u.pathname}${u.search}`;
  return registered.some((r) => {
    try {
      const candidate = new URL(r);
      return candidate.protocol === "http:" && LOOPBACK.has(candidate.hostname) && withoutPort(candidate) === withoutPort(url);
    } catch {
      return false;
    }
  });
}
