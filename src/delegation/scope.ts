import { MandateError } from "../errors/index.js";
import { globProblem } from "../policy/index.js";
import type { DelegationScope } from "../policy/index.js";

const KINDS = ["mcp:", "llm:", "db:", "delegate:"];
export const MAX_SCOPE_ENTRIES = 64;

/** Scope entries are canonical resource-string globs; anything else is refused before it is stored. */
export function validateScope(scope: DelegationScope): DelegationScope {
  for (const [what, list] of [["allow", scope.allow], ["deny", scope.deny], ["require-approval", scope.requireApproval]] as const) {
    if (list.length > MAX_SCOPE_ENTRIES) throw new MandateError("INVALID_ARGUMENT", `--${what} takes at most ${MAX_SCOPE_ENTRIES} patterns`);
    for (const pattern of list) {
      const problem = globProblem(pattern);
      if (problem) throw new MandateError("INVALID_ARGUMENT", `--${what} ${JSON.stringify(pattern.slice(0, 80))}: ${problem}`);
      if (!KINDS.some((k) => pattern.startsWith(k))) {
        throw new MandateError("INVALID_ARGUMENT", `--${what} ${JSON.stringify(pattern.slice(0, 80))}: a scope pattern starts with its kind, e.g. 'mcp:k8s/read_*', 'llm:gpt-4.1-mini', 'db:orders/select', 'delegate:log-reader'`);
      }
    }
  }
  if (scope.allow.length === 0) throw new MandateError("INVALID_ARGUMENT", "a delegation needs at least one --allow pattern (it grants nothing otherwise)");
  if (scope.maxSpendUsd !== undefined && !(Number.isFinite(scope.maxSpendUsd) && scope.maxSpendUsd >= 0)) throw new MandateError("INVALID_ARGUMENT", "--max-spend is a non-negative amount in US dollars");
  return { allow: [...new Set(scope.allow)], deny: [...new Set(scope.deny)], requireApproval: [...new Set(scope.requireApproval)], ...(scope.maxSpendUsd !== undefined ? { maxSpendUsd: scope.maxSpendUsd } : {}) };
}
