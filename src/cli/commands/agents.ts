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

const collect = (value: string, previous: string[] = []) => [...previous, value];

const SELECTOR_HELP = `
Workload selectors decide which local processes the daemon's Workload API hands this
identity to. All selectors must match the calling process; with none, only processes of
the daemon's own user are served.
  unix:uid:1000   unix:gid:1000   unix:user:alice   unix:group:agents
  unix:path:/usr/bin/python3      (the executable; a symlink is resolved on the host)
  unix:sha256:<hex>               (sha256sum of the executable)
`;

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
      .option("--selector <selector>", "workload selector a local process must match to get this identity; repeat to require several (all must match)", collect)
      .option("--token-ttl <duration>", "how long the join token stays valid", "30m")
      .addHelpText("after", `${SELECTOR_HELP}\nExamples:\n  mandate agents add deploy-auditor --role incident-reader --labels env=prod --selector unix:uid:1000 --selector unix:path:/usr/bin/python3\n  mandate agents add ci-bot --format json | jq -r .token`),
  ).action(async (name: string, opts: { role?: string[]; labels?: string[]; selector?: string[]; tokenTtl: string }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<TokenResponse & { agent: Agent }>("POST", "/v1/agents", {
        name,
        roles: opts.role ?? [],
        labels: parseLabels(opts.labels),
        selectors: opts.selector ?? [],
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
          ["NAME", "SPIFFE ID", "ROLES", "LABELS", "SELECTORS", "CREATED"],
          list.map((a) => [a.name, a.spiffeId, a.roles.join(",") || "-", Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(",") || "-", a.selectors.join(" ") || "-", a.createdAt]),
        );
    });
  });

  adminOptions(agents.command("show <name>").description("Show an agent, its instances and locks")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<{ agent: Agent; instances: { id: string; hostname: string; joinMethod: string; generation: number; svidExpiresAt: string; lastRenewedAt: string }[]; locks: Lock[] }>("GET", `/v1/agents/${encodeURIComponent(name)}`);
      if (g.format === "json") printJson(io, response);
      else {
        const a = response.agent;
        io.out([`name        ${a.name}`, `spiffe id   ${a.spiffeId}`, `roles       ${a.roles.join(", ") || "-"}`, `labels      ${Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "-"}`, `selectors   ${a.selectors.join(" AND ") || "- (only the daemon's own user)"}`, `created     ${a.createdAt} by ${a.createdBy}`, "", "instances:"].join("\n"));
        printTable(io, ["ID", "HOST", "METHOD", "GEN", "SVID EXPIRES", "LAST RENEWAL"], response.instances.map((i) => [i.id, i.hostname, i.joinMethod, i.generation, i.svidExpiresAt, i.lastRenewedAt]));
        if (response.locks.length) io.out(`\nlocked: ${response.locks.map((l) => `${l.id} (${l.reason})`).join("; ")}`);
      }
    });
  });

  adminOptions(
    agents
      .command("update <name>")
      .description("Change an agent's workload selectors (daemons apply them at their next renewal)")
      .option("--selector <selector>", "the new selector set (repeat; all must match)", collect)
      .option("--clear-selectors", "remove every selector: only the daemon's own user is served")
      .addHelpText("after", `${SELECTOR_HELP}\nExamples:\n  mandate agents update deploy-auditor --selector unix:uid:1000 --selector unix:sha256:$(sha256sum /usr/bin/python3.11 | cut -d' ' -f1)\n  mandate agents update deploy-auditor --clear-selectors`),
  ).action(async (name: string, opts: { selector?: string[]; clearSelectors?: boolean }, cmd: Command) => {
    if (!opts.selector && !opts.clearSelectors) throw new MandateError("INVALID_ARGUMENT", "nothing to change: give --selector (repeatable) or --clear-selectors");
    if (opts.selector && opts.clearSelectors) throw new MandateError("INVALID_ARGUMENT", "--selector and --clear-selectors contradict each other");
    await withAdminClient(cmd, async (client, g) => {
      const { agent } = await client.request<{ agent: Agent }>("PATCH", `/v1/agents/${encodeURIComponent(name)}`, { selectors: opts.selector ?? [] });
      if (g.format === "json") printJson(io, agent);
      else io.out(`Agent ${agent.name}: selectors ${agent.selectors.join(" AND ") || "none (only the daemon's own user is served)"}; daemons apply them at their next renewal.`);
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
