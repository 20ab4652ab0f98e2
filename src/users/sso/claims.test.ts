import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { validateUserName } from "../registry.js";
import { mapClaims, normalizeUserName } from "./claims.js";
import type { SsoProvider } from "./providers.js";

const provider = (over: Partial<SsoProvider> = {}): SsoProvider => ({
  name: "corp",
  issuer: "https://idp.example",
  clientId: "c",
  scopes: ["openid"],
  claimUsername: "preferred_username",
  claimRoles: "groups",
  roleMap: { sre: ["sre"], auditors: ["auditor", "viewer"] },
  allowedEmailDomains: [],
  createdAt: "",
  createdBy: "",
  ...over,
});

const claimValue = fc.oneof(fc.string({ maxLength: 40 }), fc.array(fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom("sre", "auditors", "__proto__", "constructor", "toString")), { maxLength: 10 }), fc.integer(), fc.boolean(), fc.constant(null), fc.object({ maxDepth: 1 }));

describe("SSO claim mapping", () => {
  it("only roles named in the role map ever come out, whatever the groups claim holds", () => {
    const mapped = new Set(["sre", "auditor", "viewer"]);
    fc.assert(
      fc.property(claimValue, fc.string({ minLength: 1, maxLength: 20 }), (groups, sub) => {
        try {
          const identity = mapClaims(provider(), { sub, preferred_username: "alice", groups });
          for (const role of identity.roles) expect(mapped.has(role)).toBe(true);
          expect(new Set(identity.roles).size).toBe(identity.roles.length);
        } catch (error) {
          expect((error as { code: string }).code).toBe("LOGIN_FAILED");
        }
      }),
    );
  });

  it("a mapped name is always a valid user name (or the login is refused)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80 }), (raw) => {
        let name: string;
        try {
          name = normalizeUserName(raw);
        } catch (error) {
          expect((error as { code: string }).code).toBe("LOGIN_FAILED");
          return;
        }
        expect(validateUserName(name)).toBe(name);
        expect(normalizeUserName(name)).toBe(name);
      }),
    );
  });

  it("with allowed domains, only a verified email whose domain (after the last @) is listed gets in", () => {
    const p = provider({ allowedEmailDomains: ["example.com"] });
    fc.assert(
      fc.property(fc.emailAddress(), fc.boolean(), (email, verified) => {
        const domain = email.slice(email.lastIndexOf("@") + 1).toLowerCase();
        const admitted = (() => {
          try {
            mapClaims(p, { sub: "s", email, email_verified: verified });
            return true;
          } catch {
            return false;
          }
        })();
        expect(admitted).toBe(verified && domain === "example.com");
      }),
    );
    expect(() => mapClaims(p, { sub: "s", email: "mallory@example.com@evil.test", email_verified: true })).toThrow(/not allowed/);
    expect(() => mapClaims(p, { sub: "s", email: "mallory@evil.test#@example.com", email_verified: "true" })).toThrow(/not verified/);
    expect(mapClaims(p, { sub: "s", email: "Alice@Example.COM", email_verified: true }).name).toBe("alice");
  });

  it("needs a sub and a name claim; groups as a string are split; prototype keys map to nothing", () => {
    expect(() => mapClaims(provider(), { preferred_username: "a" })).toThrow(/sub/);
    expect(() => mapClaims(provider({ claimUsername: "login" }), { sub: "s", email: "a@b.c" })).toThrow(/login claim/);
    expect(mapClaims(provider(), { sub: "s", email: "x.y@b.c" }).name).toBe("x.y");
    expect(mapClaims(provider(), { sub: "s", preferred_username: "a", groups: "sre auditors" }).roles).toEqual(["sre", "auditor", "viewer"]);
    expect(mapClaims(provider(), { sub: "s", preferred_username: "a", groups: ["__proto__", "constructor", "hasOwnProperty"] }).roles).toEqual([]);
    expect(mapClaims(provider({ claimRoles: undefined }), { sub: "s", preferred_username: "a", groups: ["sre"] }).roles).toEqual([]);
  });
});
