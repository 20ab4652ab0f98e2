import { GATE_ROLES } from "../../src/delegation/testing.js";
import { createPolicyEngine } from "../../src/policy/create.js";
import type { ControlPlane } from "../../src/server/index.js";

export const SCENARIO_ROLES = GATE_ROLES;

/**
 * Applies the roles to the control plane's role registry (as `mandate roles apply`
 * does); a plane without one gets a fixed-roles engine on its context instead.
 */
export async function usePolicy(plane: ControlPlane, roles = SCENARIO_ROLES): Promise<void> {
  const context = plane.context as { policy?: { registry?: { apply(text: string, by: string): Promise<unknown> } } };
  if (context.policy?.registry) await context.policy.registry.apply(roles, "spiffe://test/mandate/admin");
  else (plane.context as { policy?: unknown }).policy = createPolicyEngine({ roles });
}
