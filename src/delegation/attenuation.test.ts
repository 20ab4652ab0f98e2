import * as fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MandateError } from "../errors/index.js";
import { globCovers, matchesGlob } from "../policy/index.js";
import type { DelegationScope } from "../policy/index.js";
import { attenuate } from "./attenuation.js";
import type { Grant } from "./types.js";

const T = Date.UTC(2026, 0, 1);

function parentGrant(scope: DelegationScope, depth = 1): Grant {
  return { id: "d-parent", parentId: null, rootId: "d-parent", depth, task: "t", delegator: { kind: "user", name: "alice" }, agent: "a", scope, createdBy: "x", createdAt: T, expiresAt: T + 3600_000, revokedAt: null, revokedBy: null, revokeReason: null };
}

// Small alphabets so random patterns and subjects actually meet.
const segment = fc.stringMatching(/^[ab_]{1,3}$/);
const globSegment = fc.oneof(segment, fc.constant("*"), segment.map((s) => `${s}*`), segment.map((s) => `*${s}`), fc.constant("?"));
const pattern = fc.tuple(fc.constantFrom("mcp:", "llm:"), fc.array(fc.oneof(globSegment, fc.constant("**")), { minLength: 1, maxLength: 3 })).map(([kind, segs]) => `${kind}${segs.join("/")}`.replace(/\*{3,}/g, "**"));
const subject = fc.tuple(fc.constantFrom("mcp:", "llm:"), fc.array(segment, { minLength: 1, maxLength: 3 })).map(([kind, segs]) => `${kind}${segs.join("/")}`);
const scope = fc.record({ allow: fc.array(pattern, { minLength: 1, maxLength: 4 }), deny: fc.array(pattern, { maxLength: 2 }), requireApproval: fc.array(pattern, { maxLength: 2 }) });

const permits = (s: DelegationScope, r: string) => s.allow.some((p) => matchesGlob(p, r)) && !s.deny.some((p) => matchesGlob(p, r));
const needsApproval = (s: DelegationScope, r: string) => s.requireApproval.some((p) => matchesGlob(p, r));

describe("attenuation", () => {
  it("never widens: whatever a child scope it accepts permits, the parent permits too, and the parent's approvals still apply", () => {
    fc.assert(
      fc.property(scope, scope, fc.array(subject, { minLength: 1, maxLength: 20 }), (parent, requested, subjects) => {
        let child: DelegationScope;
        try {
          child = attenuate({ parent: parentGrant(parent), requested, requestedExpiresAt: T + 60_000, covers: globCovers, maxDepth: 3 });
        } catch (error) {
          expect((error as MandateError).code).toBe("SCOPE_WIDENING");
          return;
        }
        for (const r of subjects) {
          if (permits(child, r)) expect(permits(parent, r)).toBe(true);
          if (needsApproval(parent, r)) expect(needsApproval(child, r)).toBe(true);
        }
      }),
      { numRuns: 500 },
    );
  });

  it("accepts the parent's own allow list and any literal it covers", () => {
    fc.assert(
      fc.property(scope, (parent) => {
        const child = attenuate({ parent: parentGrant(parent), requested: { allow: parent.allow, deny: [], requireApproval: [] }, requestedExpiresAt: T + 60_000, covers: globCovers, maxDepth: 3 });
        expect(child.deny).toEqual([...new Set(parent.deny)]);
      }),
    );
  });

  it("refuses a later expiry, a higher spend ceiling and a chain deeper than the limit", () => {
    const parent = parentGrant({ allow: ["mcp:k8s/read_*"], deny: [], requireApproval: [], maxSpendUsd: 1 });
    const narrow = { allow: ["mcp:k8s/read_logs"], deny: [], requireApproval: [] };
    expect(() => attenuate({ parent, requested: narrow, requestedExpiresAt: parent.expiresAt + 1, covers: globCovers, maxDepth: 3 })).toThrow(/cannot outlive/);
    expect(() => attenuate({ parent, requested: { ...narrow, maxSpendUsd: 1.01 }, requestedExpiresAt: T, covers: globCovers, maxDepth: 3 })).toThrow(/spend ceiling/);
    expect(attenuate({ parent, requested: narrow, requestedExpiresAt: T, covers: globCovers, maxDepth: 3 }).maxSpendUsd).toBe(1);
    expect(() => attenuate({ parent: { ...parent, depth: 3 }, requested: narrow, requestedExpiresAt: T, covers: globCovers, maxDepth: 3 })).toThrow(MandateError);
  });
});
