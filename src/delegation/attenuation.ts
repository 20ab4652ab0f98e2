import { MandateError } from "../errors/index.js";
import type { DelegationScope } from "../policy/index.js";
import type { Grant } from "./types.js";

/** `covers(outer, inner)`: every resource string `inner` matches is also matched by `outer`. */
export type GlobCovers = (outer: string, inner: string) => boolean;

export const DEFAULT_MAX_DEPTH = 3;

export interface AttenuationInput {
  parent: Grant;
  /** what the sub-delegation asks for */
  requested: DelegationScope;
  requestedExpiresAt: number;
  covers: GlobCovers;
  maxDepth: number;
}

/**
 * Checks that a sub-delegation only narrows its parent and returns the scope to store:
 * every allow is covered by a parent allow, the parent's denies and approval rules are
 * inherited (so each stored link says everything it forbids), the spend ceiling and the
 * expiry are at most the parent's, and the chain stays within the depth limit.
 */
export function attenuate(input: AttenuationInput): DelegationScope {
  const { parent, requested, covers } = input;
  if (parent.depth + 1 > input.maxDepth) {
    throw new MandateError("DELEGATION_DEPTH_EXCEEDED", `delegation ${parent.id} is already ${parent.depth} link(s) deep; a sub-delegation would exceed the limit of ${input.maxDepth}`, {
      details: { parent: parent.id, depth: parent.depth + 1, maxDepth: input.maxDepth },
    });
  }
  const widened = requested.allow.filter((inner) => !parent.scope.allow.some((outer) => covers(outer, inner)));
  if (widened.length > 0) {
    throw new MandateError(
      "SCOPE_WIDENING",
      `a sub-delegation may only narrow its parent: ${widened.map((w) => JSON.stringify(w)).join(", ")} ${widened.length === 1 ? "is" : "are"} not covered by any allow of delegation ${parent.id} (${parent.scope.allow.map((a) => JSON.stringify(a)).join(", ") || "none"})`,
      { details: { parent: parent.id, widened, parentAllow: parent.scope.allow } },
    );
  }
  if (input.requestedExpiresAt > parent.expiresAt) {
    throw new MandateError("SCOPE_WIDENING", `a sub-delegation cannot outlive its parent: delegation ${parent.id} expires at ${new Date(parent.expiresAt).toISOString()}, the requested expiry is ${new Date(input.requestedExpiresAt).toISOString()}`, {
      details: { parent: parent.id, parentExpiresAt: parent.expiresAt, requestedExpiresAt: input.requestedExpiresAt },
    });
  }
  let maxSpendUsd = requested.maxSpendUsd;
  if (parent.scope.maxSpendUsd !== undefined) {
    if (maxSpendUsd === undefined) maxSpendUsd = parent.scope.maxSpendUsd;
    else if (maxSpendUsd > parent.scope.maxSpendUsd) {
      throw new MandateError("SCOPE_WIDENING", `a sub-delegation cannot raise the spend ceiling: delegation ${parent.id} allows $${parent.scope.maxSpendUsd.toFixed(2)}, $${maxSpendUsd.toFixed(2)} was requested`, {
        details: { parent: parent.id, parentMaxSpendUsd: parent.scope.maxSpendUsd, requestedMaxSpendUsd: maxSpendUsd },
      });
    }
  }
  return {
    allow: unique(requested.allow),
    deny: unique([...parent.scope.deny, ...requested.deny]),
    requireApproval: unique([...parent.scope.requireApproval, ...requested.requireApproval]),
    ...(maxSpendUsd !== undefined ? { maxSpendUsd } : {}),
  };
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
