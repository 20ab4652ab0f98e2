import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type AgentCredentials, readCredentials } from "../src/agent/index.js";
import { runCli } from "../src/cli/index.js";
import { useSecretInput } from "../src/cli/secret-input.js";

/**
 * The benchmarks' access setup, done as an operator would, through the CLI against the
 * control plane's data directory: roles applied with `mandate roles apply`, the agent
 * joined holding a role, and optionally a person's delegation whose token the agent
 * obtains by exchanging its SVID. So the measured overhead includes the real decision:
 * the principal resolved, the roles' compiled rules matched and, with a token, the token
 * verified and the grant's chain checked.
 */
export const BENCH_ROLES = `
kind: role
name: bench-agent
allow:
  llm:
    - models: ["gpt-4.1*"]
  mcp:
    - servers: [http, stdio, stdio-shared]
      tools: [echo, "get-*"]
deny:
  llm:
    - models: ["*-preview"]
  mcp:
    - servers: ["*"]
      tools: [get-env]
---
kind: role
name: bench-delegator
allow:
  llm:
    - models: ["**"]
  mcp:
    - servers: ["**"]
  delegate:
    - agents: ["bench-*"]
      max_ttl: 2h
`;

const DELEGATOR = "bench-owner";

async function cli(...args: string[]): Promise<string> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(["node", "mandate", ...args], { out: (t) => out.push(t), err: (t) => err.push(t) });
  if (code !== 0) throw new Error(`mandate ${args.slice(0, 2).join(" ")} failed: ${err.join("")}`);
  return out.join("");
}

export async function applyBenchRoles(dataDir: string): Promise<void> {
  const file = join(dataDir, "bench-roles.yaml");
  await writeFile(file, BENCH_ROLES);
  await cli("roles", "apply", "-f", file, "--data-dir", dataDir);
  await rm(file);
}

/** `mandate agents add --role bench-agent` and a one-shot join; the agent's credentials. */
export async function joinBenchAgent(dataDir: string, url: string, name: string, labels?: string): Promise<{ credentialDir: string; credentials: AgentCredentials }> {
  const added = await cli("agents", "add", name, "--role", "bench-agent", ...(labels ? ["--labels", labels] : []), "--data-dir", dataDir, "--format", "json");
  const credentialDir = join(dataDir, `${name}-creds`);
  await cli("daemon", "--auth-server", url, "--join-token", (JSON.parse(added) as { token: string }).token, "--out", credentialDir, "--oneshot");
  return { credentialDir, credentials: (await readCredentials(credentialDir))! };
}

/** A person holding bench-delegator delegates `allow` to the agent for one task; the delegation token the agent gets for it. */
export async function benchDelegationToken(dataDir: string, agent: string, credentialDir: string, allow: string[]): Promise<string> {
  const password = `bench-${Math.random().toString(36).slice(2)}-password`;
  const restore = useSecretInput({ readStdin: async () => password, promptHidden: async () => password });
  try {
    await cli("users", "add", DELEGATOR, "--roles", "bench-delegator", "--password-stdin", "--data-dir", dataDir, "--format", "json");
  } finally {
    restore();
  }
  const task = `bench-${agent}`;
  await cli("delegate", "--data-dir", dataDir, "--as-user", DELEGATOR, "--agent", agent, "--task", task, "--ttl", "2h", ...allow.flatMap((p) => ["--allow", p]), "--format", "json");
  return (await cli("delegations", "token", "--task", task, "--credentials", credentialDir)).trim();
}
