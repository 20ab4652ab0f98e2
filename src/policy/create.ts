import { compileRole, type CompiledRole } from "./compile.js";
import { CompiledPolicyEngine, type RuntimeList, type SnapshotSource, staticSnapshot } from "./engine.js";
import type { PolicyEngine } from "./gate.js";
import { parseRoleDocuments } from "./role-document.js";
import type { Principal } from "./types.js";

/** What the control plane exposes as `context.policy`. */
export interface MandatePolicyEngine extends PolicyEngine {
  /** whether a holder of `principal`'s roles may approve access requests for `resource` (a canonical string) */
  mayApprove(principal: Principal, resource: string): boolean;
  /** the revision of the snapshot decisions are made on */
  revision(): string;
}

export interface PolicyEngineOptions {
  /** a live source (the store-backed RoleRegistry), or… */
  source?: SnapshotSource;
  /** …fixed roles: YAML text (one or more documents) or compiled roles */
  roles?: string | CompiledRole[];
  runtime?: RuntimeList;
  now?: () => number;
}

export function createPolicyEngine(options: PolicyEngineOptions): MandatePolicyEngine {
  let source = options.source;
  if (!source) {
    const roles = typeof options.roles === "string" ? parseRoleDocuments(options.roles).map(compileRole) : (options.roles ?? []);
    const snapshot = staticSnapshot(roles, options.runtime);
    source = { snapshot: () => snapshot };
  }
  const engine = new CompiledPolicyEngine(source, options.now);
  const live = source;
  return {
    authorize: (request) => engine.authorize(request),
    mayApprove: (principal, resource) => engine.mayApprove(principal, resource),
    revision: () => live.snapshot().revision,
  };
}
