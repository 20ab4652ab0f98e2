import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { GATE_ROLES } from "../../src/delegation/testing.js";
import { createPolicyEngine } from "../../src/policy/create.js";
import type { ControlPlane } from "../../src/server/index.js";
import type { TestAgent } from "./agent.js";
import { tempDir } from "./backends.js";
import { mandate } from "./cli.js";

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

/**
 * Roles for the proxy tests: `model-user` may use every configured model, `tool-user`
 * every MCP server, and a person holding `delegator` may hand any of that to any agent
 * (so a test's grant is limited only by the scope it asks for).
 */
export const PROXY_ROLES = `
kind: role
name: model-user
allow:
  llm:
    - models: ["**"]
---
kind: role
name: tool-user
allow:
  mcp:
    - servers: ["**"]
---
kind: role
name: delegator
allow:
  llm:
    - models: ["**"]
  mcp:
    - servers: ["**"]
  delegate:
    - agents: ["**"]
      max_ttl: 1h
`;

/** `mandate roles apply -f` against the control plane whose data directory this is (for planes in other processes). */
export async function applyRolesWithCli(dataDir: string, roles: string): Promise<void> {
  const dir = await tempDir("mandate-roles-");
  try {
    const file = join(dir, "roles.yaml");
    await writeFile(file, roles);
    const applied = await mandate("roles", "apply", "-f", file, "--data-dir", dataDir);
    if (applied.code !== 0) throw new Error(`roles apply failed: ${applied.stderr}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface TestGrant {
  task: string;
  allow: string[];
  deny?: string[];
  requireApproval?: string[];
  maxSpendUsd?: number;
  ttl?: string;
  /** the person the admin delegates on behalf of (default alice; see `addTestUser`) */
  asUser?: string;
}

export interface TestDelegation {
  id: string;
  task: string;
  /** the delegation token the agent obtained by exchanging its SVID */
  token: string;
}

/**
 * A real grant and its token, as in the reference scenario: an admin delegates on behalf
 * of a person (`mandate delegate --as-user`), the agent exchanges its SVID for the token
 * (`mandate delegations token`).
 */
export async function delegateTo(plane: Pick<ControlPlane, "dataDir">, agent: TestAgent, grant: TestGrant): Promise<TestDelegation> {
  const scope = [
    ...grant.allow.flatMap((p) => ["--allow", p]),
    ...(grant.deny ?? []).flatMap((p) => ["--deny", p]),
    ...(grant.requireApproval ?? []).flatMap((p) => ["--require-approval", p]),
    ...(grant.maxSpendUsd !== undefined ? ["--max-spend", String(grant.maxSpendUsd)] : []),
  ];
  const made = await mandate("delegate", "--data-dir", plane.dataDir, "--as-user", grant.asUser ?? "alice", "--agent", agent.name, "--task", grant.task, "--ttl", grant.ttl ?? "30m", ...scope, "--format", "json");
  if (made.code !== 0) throw new Error(`delegate to ${agent.name} failed: ${made.stderr}`);
  const fetched = await mandate("delegations", "token", "--task", grant.task, "--credentials", agent.credentialDir);
  if (fetched.code !== 0) throw new Error(`delegations token for ${grant.task} failed: ${fetched.stderr}`);
  return { id: made.json().id, task: grant.task, token: fetched.stdout.trim() };
}
