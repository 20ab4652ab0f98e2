import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { redirectUriMatches, validateRedirectUri } from "./redirect-uris.js";

describe("OAuth redirect URIs", () => {
  it("registration accepts https, loopback http and app schemes; refuses the rest", () => {
    for (const ok of ["https://claude.ai/api/mcp/auth_callback", "http://127.0.0.1:33418/", "http://localhost/cb", "http://[::1]:9/cb", "cursor://anysphere.cursor-retrieval/oauth/callback", "com.example.app:/oauth"]) expect(validateRedirectUri(ok)).toBe(ok);
    for (const bad of ["http://example.com/cb", "javascript:alert(1)", "data:text/html,x", "file:///etc/passwd", "https://a.example/cb#frag", "https://user:pw@a.example/cb", "/relative", "not a uri"]) {
      expect(() => validateRedirectUri(bad)).toThrow();
    }
  });

  it("matching is exact, but a loopback http redirect may change only its port", () => {
    const registered = ["http://127.0.0.1/callback", "https://app.example/cb"];
    expect(redirectUriMatches(registered, "http://127.0.0.1:53682/callback")).toBe(true);
    expect(redirectUriMatches(registered, "https://app.example/cb")).toBe(true);
    expect(redirectUriMatches(registered, "https://app.example:8443/cb")).toBe(false);
    expect(redirectUriMatches(registered, "http://127.0.0.1:1/other")).toBe(false);
    expect(redirectUriMatches(registered, "http://localhost:1/callback")).toBe(false);
  });

  it("never matches a URI that differs from every registered one in anything but a loopback port", () => {
    const uri = fc.oneof(
      fc.webUrl({ withQueryParameters: true }),
      fc.tuple(fc.constantFrom("127.0.0.1", "localhost", "[::1]"), fc.option(fc.integer({ min: 1, max: 65535 })), fc.webPath()).map(([h, p, path]) => `http://${h}${p ? `:${p}` : ""}${path}`),
    );
    const stripLoopbackPort = (value: string) => {
      const url = new URL(value);
      return url.protocol === "http:" && ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname) ? `${url.protocol}//${url.hostname}${url.pathname}${url.search}` : undefined;
    };
    fc.assert(
      fc.property(fc.array(uri, { minLength: 1, maxLength: 4 }), uri, (registered, presented) => {
        const expected = registered.includes(presented) || (stripLoopbackPort(presented) !== undefined && registered.some((r) => stripLoopbackPort(r) === stripLoopbackPort(presented)));
        expect(redirectUriMatches(registered, presented)).toBe(expected);
      }),
    );
  });
});
