import { createPolicyEngine } from "../../src/policy/create.js";
import type { ControlPlane } from "../../src/server/index.js";

/** Roles for the reference scenario: Alice is an SRE who may approve k8s actions; the agent may use the k8s server and gpt-4.1 models. */
export const SCENARIO_ROLES = `
kind: role
name: sre
allow:
  mcp:
    - servers: ["**"]
  llm:
    - models: ["**"]
  delegate:
    - agents: ["deploy-*", "log-reader", "intruder"]
      max_ttl: 1h
approve: ["mcp:k8s/*"]
---
kind: role
name: viewer
allow:
  mcp:
    - servers: [k8s]
      tools: ["read_*"]
---
kind: role
name: k8s-agent
allow:
  mcp:
    - servers: [k8s]
  llm:
    - models: ["gpt-4.1*"]
  delegate:
    - agents: ["log-reader", "deploy-*"]
      max_ttl: 1h
`;

/**
 * Applies the roles to the control plane's role registry (as `mandate roles apply`
 * does); a plane without one gets a fixed-roles engine on its context instead.
 */
export async function usePolicy(plane: ControlPlane, roles = SCENARIO_ROLES): Promise<void> {
  const context = plane.context as { policy?: { registry?: { apply(text: string, by: string): Promise<unknown> } } };
  if (context.policy?.registry) await context.policy.registry.apply(roles, "spiffe://test/mandate/admin");
  else (plane.context as { policy?: unknown }).policy = createPolicyEngine({ roles });
}
