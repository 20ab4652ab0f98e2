import { type Command, Option } from "commander";
import { agentClient, readCredentials } from "../../agent/index.js";
import type { MandateClient } from "../../client/http-client.js";
import { MandateError } from "../../errors/index.js";
import { connectAdmin } from "../admin-client.js";
import { parseDuration } from "../duration.js";
import { type Io, type OutputFormat, printJson } from "../output.js";
import { withUserClient } from "../user-client.js";

/** Who runs a delegation command: an agent (its credential directory), an admin on the control-plane host (--data-dir), or the logged-in person. */
export interface CallerOptions {
  credentials?: string | undefined;
  dataDir?: string | undefined;
  identity?: string | undefined;
  authServer?: string | undefined;
  format?: OutputFormat | undefined;
}

export function callerOptions(command: Command, formats: string[] = ["table", "json"]): Command {
  return command
    .option("--credentials <dir>", "act as an agent: its credential directory (as written by `mandate daemon --out`)")
    .option("--identity <file>", "your identity file from `mandate login` (default ~/.mandate/identity.json, env MANDATE_IDENTITY)")
    .option("--data-dir <dir>", "act as the admin of the control plane whose data directory this is")
    .option("--auth-server <url>", "control plane address, https://HOST:PORT (overrides the identity's)")
    .addOption(new Option("--format <format>", "output format").choices(formats));
}

export function callerOptionsOf(command: Command): CallerOptions {
  const all = command.optsWithGlobals() as Record<string, string | undefined>;
  return { credentials: all.credentials, dataDir: all.dataDir, identity: all.identity, authServer: all.authServer, format: (all.format as OutputFormat | undefined) ?? "table" };
}

export async function agentClientFor(dir: string): Promise<MandateClient> {
  const credentials = await readCredentials(dir);
  if (!credentials) throw new MandateError("UNAUTHENTICATED", `no agent credentials in ${dir}; run \`mandate daemon --out ${dir}\` first`);
  if (credentials.notAfter.getTime() <= Date.now()) throw new MandateError("UNAUTHENTICATED", `the SVID in ${dir} expired at ${credentials.notAfter.toISOString()}; is \`mandate daemon\` running?`);
  return agentClient(credentials);
}

/** Runs `fn` with a client for whoever this command acts as, and always closes it. */
export async function withCallerClient<T>(command: Command, fn: (client: MandateClient, options: CallerOptions) => Promise<T>): Promise<T> {
  const options = callerOptionsOf(command);
  if (options.credentials) {
    const client = await agentClientFor(options.credentials);
    try {
      return await fn(client, options);
    } finally {
      client.close();
    }
  }
  if (options.dataDir) {
    const client = await connectAdmin({ dataDir: options.dataDir, authServer: options.authServer });
    try {
      return await fn(client, options);
    } finally {
      client.close();
    }
  }
  return withUserClient({ identity: options.identity, authServer: options.authServer }, (client) => fn(client, options));
}

export const collect = (value: string, previous: string[] = []) => [...previous, value];

interface GrantView {
  id: string;
  status: string;
  task: string;
  agent: string;
  delegator: string;
  parent: string | null;
  depth: number;
  scope: { allow: string[]; deny: string[]; requireApproval: string[]; maxSpendUsd?: number };
  expiresAt: string;
  chain?: string[];
}

export function describeGrant(grant: GrantView): string {
  const lines = [
    `Delegation ${grant.id} (${grant.status})`,
    `  task:       ${grant.task}`,
    `  chain:      ${(grant.chain ?? [grant.delegator, `agent:${grant.agent}`]).join(" → ")}`,
    `  expires:    ${grant.expiresAt}`,
    `  allow:      ${grant.scope.allow.join(" ")}`,
  ];
  if (grant.scope.deny.length) lines.push(`  deny:       ${grant.scope.deny.join(" ")}`);
  if (grant.scope.requireApproval.length) lines.push(`  approval:   ${grant.scope.requireApproval.join(" ")}`);
  if (grant.scope.maxSpendUsd !== undefined) lines.push(`  max spend:  $${grant.scope.maxSpendUsd.toFixed(2)}`);
  if (grant.parent) lines.push(`  parent:     ${grant.parent} (depth ${grant.depth})`);
  return lines.join("\n");
}

const HELP = `
A delegation hands an agent part of your own access, for one task, for a limited time.
What the agent may do is always the intersection of its own roles, your roles, this
delegation's scope and the runtime allow-list; deny wins.

Patterns are canonical resource strings with globs (* within a segment, ** across):
  mcp:<server>/<tool>   llm:<model>   db:<database>/<statement class>   delegate:<agent>

Examples:
  mandate delegate --agent deploy-auditor --task investigate-checkout-deploy --ttl 30m \\
    --allow 'mcp:k8s/read_*' --allow 'llm:gpt-4.1-mini' \\
    --deny 'mcp:*/kubectl_exec' --require-approval 'mcp:*/rollback' --max-spend 2.00

  # an agent passing a narrower part of its grant to another agent (attenuation only):
  mandate delegate --credentials ./agent-creds --parent d-0123456789abcdef \\
    --agent log-reader --ttl 10m --allow 'mcp:k8s/read_logs'

The agent then fetches its delegation token:  mandate delegations token --task <task> --credentials <dir>
`;

export function registerDelegate(program: Command, io: Io): void {
  callerOptions(
    program
      .command("delegate")
      .description("Delegate part of your access to an agent for one task (prints the new delegation id)")
      .requiredOption("--agent <name>", "the agent receiving the delegation")
      .option("--task <id>", "the task this delegation serves (required unless --parent)")
      .requiredOption("--ttl <duration>", "how long the delegation lives, e.g. 30m, 2h")
      .option("--allow <pattern>", "a resource pattern the agent may use (repeatable)", collect, [])
      .option("--deny <pattern>", "a resource pattern the agent may never use (repeatable)", collect, [])
      .option("--require-approval <pattern>", "a resource pattern each use of which needs a person's approval (repeatable)", collect, [])
      .option("--max-spend <usd>", "spend ceiling for model traffic under this delegation, in US dollars")
      .option("--parent <id>", "sub-delegate: the delegation the calling agent holds (only narrower scope, never longer)")
      .option("--as-user <name>", "admins: delegate on behalf of this person (limited to their access)")
      .addHelpText("after", HELP),
  ).action(async (opts: { agent: string; task?: string; ttl: string; allow: string[]; deny: string[]; requireApproval: string[]; maxSpend?: string; parent?: string; asUser?: string }, command: Command) => {
    const ttlMs = parseDuration(opts.ttl, "--ttl");
    if (opts.allow.length === 0) throw new MandateError("INVALID_ARGUMENT", "pass at least one --allow pattern, e.g. --allow 'mcp:k8s/read_*'");
    if (!opts.task && !opts.parent) throw new MandateError("INVALID_ARGUMENT", "--task is required (the task this delegation serves)");
    const maxSpendUsd = opts.maxSpend === undefined ? undefined : Number(opts.maxSpend);
    if (maxSpendUsd !== undefined && !(Number.isFinite(maxSpendUsd) && maxSpendUsd >= 0)) throw new MandateError("INVALID_ARGUMENT", "--max-spend takes an amount in US dollars, e.g. 2.00");
    await withCallerClient(command, async (client, options) => {
      const body = {
        agent: opts.agent,
        ...(opts.task ? { task: opts.task } : {}),
        ttlSeconds: Math.ceil(ttlMs / 1000),
        allow: opts.allow,
        deny: opts.deny,
        requireApproval: opts.requireApproval,
        ...(maxSpendUsd !== undefined ? { maxSpendUsd } : {}),
        ...(opts.parent ? { parent: opts.parent } : {}),
        ...(opts.asUser ? { onBehalfOf: opts.asUser } : {}),
      };
      const { delegation } = await client.request<{ delegation: GrantView }>("POST", "/v1/delegations", body);
      if (options.format === "json") printJson(io, delegation);
      else io.out(`${describeGrant(delegation)}\n\nThe agent fetches its delegation token with:\n  mandate delegations token --task ${delegation.task} --credentials <its credential dir>`);
    });
  });
}
