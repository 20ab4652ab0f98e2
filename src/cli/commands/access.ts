import type { Command } from "commander";
import { MandateError } from "../../errors/index.js";
import { type Io, printJson } from "../output.js";
import { callerOptions, withCallerClient } from "./delegate.js";
import { parseLabels } from "./agents.js";

interface CheckResult {
  allow: boolean;
  reasons: string[];
  obligations: Array<Record<string, unknown>>;
  policyIds: string[];
  deniedBy?: string;
  action: string;
  resource: string;
  principal: { kind: string; name: string; roles: string[] };
  delegation?: { id: string; chain: string[] };
}

const HELP = `
Asks the one decision function what it would decide, without doing anything: the
intersection of the principal's roles, each delegator's roles, the delegation's scope
and the runtime allow-list. Approvals are neither created nor used.

Exit status: 0 when allowed, 1 when denied (or on error), so scripts and CI can assert policy:
  mandate access check --agent deploy-auditor --delegation d-0123456789abcdef 'mcp:k8s/read_logs'
  mandate access check --agent deploy-auditor 'mcp:k8s/apply' --args '{"namespace":"checkout"}' --format json
`;

export function registerAccess(program: Command, io: Io, setExitCode: (code: number) => void): void {
  const access = program.command("access").description("Test access decisions");
  callerOptions(
    access
      .command("check <resource>")
      .description("Print the decision for a principal on a resource (mcp:<server>/<tool>, llm:<model>, db:<database>/<class>, delegate:<agent>)")
      .option("--agent <name>", "the agent asking")
      .option("--user <name>", "or the person asking")
      .option("--delegation <id>", "the delegation the agent acts under")
      .option("--action <action>", "the action (default from the resource: mcp.tools/call, llm.chat, db.query, delegate.create)")
      .option("--args <json>", "tool arguments as a JSON object, for conditions on arguments")
      .option("--labels <k=v,...>", "labels of the resource (e.g. the MCP server's)")
      .addHelpText("after", HELP),
  ).action(async (resource: string, opts: { agent?: string; user?: string; delegation?: string; action?: string; args?: string; labels?: string }, command: Command) => {
    let args: Record<string, unknown> | undefined;
    if (opts.args !== undefined) {
      try {
        args = JSON.parse(opts.args) as Record<string, unknown>;
      } catch {
        throw new MandateError("INVALID_ARGUMENT", "--args must be a JSON object, e.g. '{\"namespace\":\"checkout\"}'");
      }
      if (typeof args !== "object" || args === null || Array.isArray(args)) throw new MandateError("INVALID_ARGUMENT", "--args must be a JSON object");
    }
    await withCallerClient(command, async (client, options) => {
      const labels = opts.labels ? parseLabels([opts.labels]) : undefined;
      const result = await client.request<CheckResult>("POST", "/v1/access/check", { resource, ...(opts.agent ? { agent: opts.agent } : {}), ...(opts.user ? { user: opts.user } : {}), ...(opts.delegation ? { delegation: opts.delegation } : {}), ...(opts.action ? { action: opts.action } : {}), ...(args ? { args } : {}), ...(labels ? { labels } : {}) });
      if (options.format === "json") printJson(io, result);
      else {
        const lines = [`${result.allow ? "ALLOW" : "DENY"}  ${result.principal.kind}:${result.principal.name} ${result.action} ${result.resource}${result.deniedBy ? `  (denied by: ${result.deniedBy})` : ""}`];
        if (result.delegation) lines.push(`  chain:       ${result.delegation.chain.join(" → ")}`);
        for (const reason of result.reasons) lines.push(`  reason:      ${reason}`);
        for (const o of result.obligations) lines.push(`  obligation:  ${JSON.stringify(o)}`);
        if (result.policyIds.length) lines.push(`  policies:    ${result.policyIds.join(", ")}`);
        io.out(lines.join("\n"));
      }
      setExitCode(result.allow ? 0 : 1);
    });
  });
}
