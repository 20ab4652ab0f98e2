import type { Command } from "commander";
import { MandateError } from "../../errors/index.js";
import type { Agent, Lock } from "../../identity/index.js";
import { parseDuration } from "../duration.js";
import { type Io, printJson, printTable } from "../output.js";
import { adminOptions, withAdminClient } from "./shared.js";

interface TokenResponse {
  token: string;
  expiresAt: string;
  caPin: string;
  authServer: string;
}

export function parseLabels(values: string[] | undefined): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const value of values ?? []) {
    for (const pair of value.split(",")) {
      if (!pair) continue;
      const index = pair.indexOf("=");
      if (index <= 0) throw new MandateError("INVALID_ARGUMENT", `invalid label ${JSON.stringify(pair)}: use key=value`);
      labels[pair.slice(0, index)] = pair.slice(index + 1);
    }
  }
  return labels;
}

function printToken(io: Io, name: string, response: TokenResponse): void {
  io.out(
    [
      `Join token for agent ${name} (single use, expires ${response.expiresAt}):`,
      "",
      `  ${response.token}`,
      "",
      "On the agent's host run:",
      `  mandate daemon --auth-server ${response.authServer} --join-token ${response.token} --out ./agent-creds`,
      "",
      `The token carries the CA pin ${response.caPin}; the daemon refuses any server that does not present that CA.`,
    ].join("\n"),
  );
}

export function registerAgents(program: Command, io: Io): void {
  const agents = program.command("agents").description("Register agents, issue join tokens, remove agents");

  adminOptions(
    agents
      .command("add <name>")
      .description("Register an agent and print a one-time join token")
      .option("--role <role...>", "role(s) the agent holds (repeatable)")
      .option("--labels <k=v,...>", "labels, e.g. env=prod,team=sre (repeatable)", (v: string, prev: string[] = []) => [...prev, v])
      .option("--token-ttl <duration>", "how long the join token stays valid", "30m")
      .addHelpText("after", "\nExample:\n  mandate agents add deploy-auditor --role incident-reader --labels env=prod\n  mandate agents add ci-bot --format json | jq -r .token"),
  ).action(async (name: string, opts: { role?: string[]; labels?: string[]; tokenTtl: string }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<TokenResponse & { agent: Agent }>("POST", "/v1/agents", {
        name,
        roles: opts.role ?? [],
        labels: parseLabels(opts.labels),
        tokenTtlSeconds: Math.round(parseDuration(opts.tokenTtl, "--token-ttl") / 1000),
      });
      if (g.format === "json") printJson(io, response);
      else {
        io.out(`Agent ${response.agent.name} registered as ${response.agent.spiffeId}.\n`);
        printToken(io, name, response);
      }
    });
  });

  adminOptions(agents.command("ls").alias("list").description("List agents")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { agents: list } = await client.request<{ agents: Agent[] }>("GET", "/v1/agents");
      if (g.format === "json") printJson(io, list);
      else
        printTable(
          io,
          ["NAME", "SPIFFE ID", "ROLES", "LABELS", "CREATED"],
          list.map((a) => [a.name, a.spiffeId, a.roles.join(",") || "-", Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(",") || "-", a.createdAt]),
        );
    });
  });

  adminOptions(agents.command("show <name>").description("Show an agent, its instances and locks")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<{ agent: Agent; instances: { id: string; hostname: string; joinMethod: string; generation: number; svidExpiresAt: string; lastRenewedAt: string }[]; locks: Lock[] }>("GET", `/v1/agents/${encodeURIComponent(name)}`);
      if (g.format === "json") printJson(io, response);
      else {
        const a = response.agent;
        io.out([`name        ${a.name}`, `spiffe id   ${a.spiffeId}`, `roles       ${a.roles.join(", ") || "-"}`, `labels      ${Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "-"}`, `created     ${a.createdAt} by ${a.createdBy}`, "", "instances:"].join("\n"));
        printTable(io, ["ID", "HOST", "METHOD", "GEN", "SVID EXPIRES", "LAST RENEWAL"], response.instances.map((i) => [i.id, i.hostname, i.joinMethod, i.generation, i.svidExpiresAt, i.lastRenewedAt]));
        if (response.locks.length) io.out(`\nlocked: ${response.locks.map((l) => `${l.id} (${l.reason})`).join("; ")}`);
      }
    });
  });

  adminOptions(agents.command("rm <name>").alias("remove").description("Remove an agent and revoke its credentials (locks them until they expire)")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<{ agent: Agent; lock: Lock }>("DELETE", `/v1/agents/${encodeURIComponent(name)}`);
      if (g.format === "json") printJson(io, response);
      else io.out(`Agent ${name} removed; its credentials are revoked by lock ${response.lock.id} until ${response.lock.expiresAt}.`);
    });
  });

  const instances = agents.command("instances").description("Joined instances of an agent (each host or process that joined)");
  type InstanceView = { id: string; hostname: string; joinMethod: string; generation: number; createdAt: string; lastRenewedAt: string; svidSerial: string; svidExpiresAt: string; version: string };
  adminOptions(instances.command("ls <agent>").alias("list").description("List an agent's instances")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { instances: list } = await client.request<{ instances: InstanceView[] }>("GET", `/v1/agents/${encodeURIComponent(name)}`);
      if (g.format === "json") printJson(io, list);
      else printTable(io, ["ID", "HOST", "METHOD", "GEN", "SVID EXPIRES", "LAST RENEWAL", "VERSION"], list.map((i) => [i.id, i.hostname, i.joinMethod, i.generation, i.svidExpiresAt, i.lastRenewedAt, i.version || "-"]));
    });
  });
  adminOptions(instances.command("show <agent> <id>").description("Show one instance")).action(async (name: string, id: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { instances: list } = await client.request<{ instances: InstanceView[] }>("GET", `/v1/agents/${encodeURIComponent(name)}`);
      const instance = list.find((i) => i.id === id);
      if (!instance) throw new MandateError("NOT_FOUND", `agent ${name} has no instance ${id}; see \`mandate agents instances ls ${name}\``);
      if (g.format === "json") printJson(io, instance);
      else io.out(Object.entries(instance).map(([k, v]) => `${k.padEnd(14)} ${v || "-"}`).join("\n"));
    });
  });

  const tokens = agents.command("tokens").description("Join tokens for existing agents");
  adminOptions(tokens.command("add <name>").description("Issue another one-time join token for an agent").option("--ttl <duration>", "token lifetime", "30m")).action(async (name: string, opts: { ttl: string }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<TokenResponse>("POST", `/v1/agents/${encodeURIComponent(name)}/tokens`, { ttlSeconds: Math.round(parseDuration(opts.ttl, "--ttl") / 1000) });
      if (g.format === "json") printJson(io, response);
      else printToken(io, name, response);
    });
  });
}
