import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import { claimsAllowed, claimsOfInterest, parseAllow, validateConditions } from "./claim-rules.js";
import { globMatch } from "./glob.js";

/** Reference semantics on small inputs only: a regex built from an escaped pattern. */
function referenceGlob(pattern: string, value: string): boolean {
  const source = [...pattern].map((ch) => (ch === "*" ? "[\\s\\S]*" : ch === "?" ? "[\\s\\S]" : ch.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&"))).join("");
  return new RegExp(`^${source}$`, "u").test(value);
}

const K8S = {
  aud: ["mandate"],
  iss: "https://kubernetes.default.svc.cluster.local",
  sub: "system:serviceaccount:checkout:auditor",
  "kubernetes.io": { namespace: "checkout", node: { name: "node-1", uid: "n" }, pod: { name: "auditor-7f9c", uid: "p" }, serviceaccount: { name: "auditor", uid: "s" } },
};

describe("globMatch", () => {
  it("agrees with a reference matcher (property)", () => {
    const chars = fc.constantFrom("a", "b", "/", "*", "?", ".");
    fc.assert(
      fc.property(fc.array(chars, { maxLength: 8 }).map((a) => a.join("")), fc.array(fc.constantFrom("a", "b", "/", "."), { maxLength: 10 }).map((a) => a.join("")), (pattern, value) => {
        expect(globMatch(pattern, value)).toBe(referenceGlob(pattern, value));
      }),
      { numRuns: 2000 },
    );
  });

  it("stays linear-ish on patterns that make backtracking matchers explode", () => {
    const pattern = `${"*a".repeat(40)}b`;
    const value = "a".repeat(5000);
    // A backtracking regex takes astronomically long here; the two-pointer walk is bounded by 45 × 5000 steps.
    expect(globMatch(pattern, value)).toBe(false);
    expect(globMatch("refs/heads/*", "refs/heads/main")).toBe(true);
    expect(globMatch("acme/*", "other/acme/x")).toBe(false);
  });
});

describe("claim rules", () => {
  it("match Kubernetes claims where Kubernetes writes them, every key of one condition and any condition", () => {
    const allow = [parseAllow("namespace=checkout,service_account=auditor")];
    expect(claimsAllowed("kubernetes", allow, K8S)).toBe(true);
    expect(claimsAllowed("kubernetes", [parseAllow("namespace=checkout,service_account=deployer")], K8S)).toBe(false);
    expect(claimsAllowed("kubernetes", [parseAllow("namespace=payments"), parseAllow("namespace=check*,pod=auditor-*")], K8S)).toBe(true);
    expect(claimsOfInterest("kubernetes", allow, K8S)).toEqual({ namespace: "checkout", service_account: "auditor" });
  });

  it("match arbitrary (nested, dotted, list, boolean) claims for generic OIDC", () => {
    const claims = { project_path: "acme/shop", ref_protected: true, groups: ["dev", "ops"], "https://example.com/claims": { team: "sre" } };
    expect(claimsAllowed("oidc", [parseAllow("project_path=acme/*,ref_protected=true")], claims)).toBe(true);
    expect(claimsAllowed("oidc", [parseAllow("groups=ops")], claims)).toBe(true);
    expect(claimsAllowed("oidc", [parseAllow("https://example.com/claims.team=sre")], claims)).toBe(true);
    expect(claimsAllowed("oidc", [parseAllow("missing=*")], claims)).toBe(false);
    // A glob never matches an object.
    expect(claimsAllowed("oidc", [parseAllow("https://example.com/claims=*")], claims)).toBe(false);
  });

  it("refuse rules that would admit more than their author could mean", () => {
    const refused = (method: "kubernetes" | "github" | "oidc", allow: string[]) => {
      try {
        validateConditions(method, allow.map(parseAllow));
      } catch (error) {
        return isMandateError(error, "INVALID_ARGUMENT");
      }
      return false;
    };
    expect(refused("kubernetes", [])).toBe(true);
    expect(refused("kubernetes", ["service_account=auditor"])).toBe(true);
    expect(refused("kubernetes", ["namespace=checkout,serviceaccount=x"])).toBe(true);
    expect(refused("github", ["ref=refs/heads/main"])).toBe(true);
    expect(refused("github", ["repository=*"])).toBe(true);
    expect(refused("github", ["repository=acme/shop,ref=refs/heads/main"])).toBe(false);
    expect(refused("oidc", ["project_path=acme/*"])).toBe(false);
    expect(() => parseAllow("namespace=a,namespace=b")).toThrow(/twice/);
    expect(() => parseAllow("namespace")).toThrow(/claim=glob/);
  });

  it("never throw while matching hostile claims (property)", () => {
    const allow = [parseAllow("namespace=*,service_account=a*")];
    fc.assert(
      fc.property(fc.jsonValue(), (claims) => {
        expect(typeof claimsAllowed("kubernetes", allow, { "kubernetes.io": claims } as Record<string, unknown>)).toBe("boolean");
        expect(typeof claimsAllowed("oidc", [parseAllow("a.b.c=*")], { a: claims } as Record<string, unknown>)).toBe("boolean");
      }),
    );
  });
});
