import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createPolicyEngine } from "./create.js";
import { globCovers, matchesGlob } from "./glob.js";
import { accessRequest, agent, delegation, link, mcp, scope, T0, user } from "./testing.js";
import type { AccessRequest, DelegationScope } from "./types.js";

/**
 * Properties of the intersection over generated scopes, roles and requests drawn from a
 * small universe (so that matches are frequent enough to mean something).
 */

const servers = ["k8s", "gh", "fs"];
const tools = ["read_logs", "read_events", "kubectl_exec", "rollback", "get_pods"];
const patternArb = fc.oneof(
  fc.constantFrom("**", "mcp:**", "mcp:*/*", "mcp:k8s/*", "mcp:*/read_*", "mcp:gh/**", "mcp:k8s/read_*", "mcp:*/kubectl_exec", "mcp:*/rollback", "mcp:fs/get_pods", "llm:**"),
  fc.tuple(fc.constantFrom(...servers), fc.constantFrom(...tools)).map(([s, t]) => `mcp:${s}/${t}`),
);
const scopeArb: fc.Arbitrary<DelegationScope> = fc.record({
  allow: fc.array(patternArb, { maxLength: 4 }),
  deny: fc.array(patternArb, { maxLength: 2 }),
  requireApproval: fc.array(patternArb, { maxLength: 2 }),
});
const requestArb = fc.tuple(fc.constantFrom(...servers), fc.constantFrom(...tools));

function roleYaml(name: string, allow: string[], deny: string[]): string {
  const block = (globs: string[]) => (globs.length === 0 ? "" : `  mcp:\n${globs.map((g) => `    - tools: ["${g}"]\n`).join("")}`);
  return `kind: role\nname: ${name}\n${allow.length ? `allow:\n${block(allow)}` : ""}${deny.length ? `deny:\n${block(deny)}` : ""}`;
}
const toolGlobArb = fc.constantFrom("*", "read_*", "kubectl_exec", "rollback", "get_*", "*_logs");

const roles = (agentAllow: string[], agentDeny: string[], userAllow: string[], userDeny: string[]) =>
  [roleYaml("agent-role", agentAllow.length ? agentAllow : ["nothing-matches"], agentDeny), roleYaml("user-role", userAllow.length ? userAllow : ["nothing-matches"], userDeny)].join("---\n");

const alice = user("alice", ["user-role"]);
const bot = agent("bot", ["agent-role"]);

function request(s: DelegationScope, [server, tool]: [string, string], now = T0): AccessRequest {
  return accessRequest(bot, mcp(server, tool), { delegation: delegation("d-1", [link("d-1", alice, "bot", s)]), now });
}

const roleParts = fc.tuple(fc.array(toolGlobArb, { maxLength: 3 }), fc.array(toolGlobArb, { maxLength: 2 }), fc.array(toolGlobArb, { maxLength: 3 }), fc.array(toolGlobArb, { maxLength: 2 }));

describe("intersection properties", () => {
  it("adding a deny (to the scope, a role or the runtime list) never turns a refusal into an allow", () => {
    fc.assert(
      fc.property(roleParts, scopeArb, requestArb, patternArb, toolGlobArb, fc.constantFrom("scope", "agent", "user", "runtime"), ([aa, ad, ua, ud], s, r, extraPattern, extraTool, where) => {
        const before = createPolicyEngine({ roles: roles(aa, ad, ua, ud) }).authorize(request(s, r));
        const afterEngine =
          where === "runtime"
            ? createPolicyEngine({ roles: roles(aa, ad, ua, ud), runtime: { allow: [], deny: [extraPattern] } })
            : createPolicyEngine({ roles: roles(aa, where === "agent" ? [...ad, extraTool] : ad, ua, where === "user" ? [...ud, extraTool] : ud) });
        const after = afterEngine.authorize(request(where === "scope" ? { ...s, deny: [...s.deny, extraPattern] } : s, r));
        if (!before.allow) expect(after.allow).toBe(false);
        // and never removes an approval requirement into a plain allow either
        if (before.deniedBy === "approval") expect(after.allow).toBe(false);
      }),
      { numRuns: 300 },
    );
  });

  it("deny wins: a deny that matches the request refuses it, whatever else allows", () => {
    fc.assert(
      fc.property(roleParts, scopeArb, requestArb, patternArb, toolGlobArb, fc.constantFrom("scope", "agent", "user", "runtime"), ([aa, ad, ua, ud], s, r, extraPattern, extraTool, where) => {
        const subject = `mcp:${r[0]}/${r[1]}`;
        const applies = where === "scope" || where === "runtime" ? matchesGlob(extraPattern, subject) : matchesGlob(extraTool, r[1]);
        fc.pre(applies);
        const wide: DelegationScope = { ...s, allow: ["**"] };
        const engine =
          where === "runtime"
            ? createPolicyEngine({ roles: roles(["*", ...aa], ad, ["*", ...ua], ud), runtime: { allow: [], deny: [extraPattern] } })
            : createPolicyEngine({ roles: roles(["*", ...aa], where === "agent" ? [...ad, extraTool] : ad, ["*", ...ua], where === "user" ? [...ud, extraTool] : ud) });
        const decision = engine.authorize(request(where === "scope" ? { ...wide, deny: [...s.deny, extraPattern] } : wide, r));
        expect(decision.allow).toBe(false);
        expect(decision.deniedBy).not.toBe("approval");
      }),
      { numRuns: 300 },
    );
  });

  it("a scope allows nothing its allow globs do not match, and roles nothing their rules do not", () => {
    fc.assert(
      fc.property(scopeArb, requestArb, fc.array(toolGlobArb, { maxLength: 3 }), (s, r, agentAllow) => {
        const subject = `mcp:${r[0]}/${r[1]}`;
        const engine = createPolicyEngine({ roles: roles(agentAllow, [], ["*"], []) });
        const decision = engine.authorize(request(s, r));
        if (!s.allow.some((p) => matchesGlob(p, subject))) expect(decision).toMatchObject({ allow: false, deniedBy: "delegation" });
        else if (!s.deny.some((p) => matchesGlob(p, subject)) && !agentAllow.some((g) => matchesGlob(g, r[1]))) expect(decision).toMatchObject({ allow: false, deniedBy: "agent_roles" });
      }),
      { numRuns: 300 },
    );
  });

  it("narrowing a scope (dropping allows, adding requirements) never widens the decision", () => {
    fc.assert(
      fc.property(roleParts, scopeArb, requestArb, fc.array(fc.boolean(), { minLength: 4, maxLength: 4 }), patternArb, ([aa, ad, ua, ud], s, r, keep, approval) => {
        const engine = createPolicyEngine({ roles: roles(aa, ad, ua, ud) });
        const narrowed: DelegationScope = { ...s, allow: s.allow.filter((_, i) => keep[i]), requireApproval: [...s.requireApproval, approval] };
        const wide = engine.authorize(request(s, r));
        const narrow = engine.authorize(request(narrowed, r));
        if (narrow.allow) expect(wide.allow).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("a sub-delegation whose every allow is covered by its parent's never allows more than the parent alone", () => {
    fc.assert(
      fc.property(scopeArb, scopeArb, requestArb, (parent, child, r) => {
        const engine = createPolicyEngine({ roles: roles(["*"], [], ["*"], []) });
        const attenuated = { ...child, allow: child.allow.filter((c) => parent.allow.some((p) => globCovers(p, c))) };
        const deployer = agent("deployer", ["agent-role"]);
        const twoLinks = delegation("d-2", [link("d-1", alice, "deployer", parent), link("d-2", deployer, "bot", attenuated)]);
        const viaChild = engine.authorize(accessRequest(bot, mcp(r[0], r[1]), { delegation: twoLinks }));
        const viaParent = engine.authorize(accessRequest(deployer, mcp(r[0], r[1]), { delegation: delegation("d-1", [link("d-1", alice, "deployer", parent)]) }));
        if (viaChild.allow) expect(viaParent.allow).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("never throws, and never allows, on malformed requests", () => {
    const engine = createPolicyEngine({ roles: roles(["*"], [], ["*"], []) });
    fc.assert(
      fc.property(fc.anything(), fc.anything(), fc.anything(), fc.anything(), (resource, principal, context, chainLink) => {
        const decision = engine.authorize({ principal: principal as never, resource: resource as never, action: "mcp.tools/call", context: context as never, delegation: delegation("d-x", [chainLink as never], { expiresAt: T0 + 60_000 }) });
        expect(decision.allow).toBe(false);
        expect(decision.reasons.length).toBeGreaterThan(0);
      }),
      { numRuns: 500 },
    );
  });

  it("an expired or revoked grant never allows, whatever it says", () => {
    fc.assert(
      fc.property(scopeArb, requestArb, fc.integer({ min: 0, max: 10 ** 9 }), fc.boolean(), (s, r, late, revoked) => {
        const engine = createPolicyEngine({ roles: roles(["*"], [], ["*"], []) });
        const everything = { ...s, allow: ["**", ...s.allow], deny: [], requireApproval: [] };
        const grant = delegation("d-1", [link("d-1", alice, "bot", everything, T0)], { revoked });
        const decision = engine.authorize(accessRequest(bot, mcp(r[0], r[1]), { delegation: grant, now: T0 + late }));
        expect(decision.allow).toBe(false);
        expect(decision.deniedBy).toBe("delegation");
      }),
    );
  });
});
