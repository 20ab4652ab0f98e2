import { type Command, Option } from "commander";
import { MandateError } from "../../errors/index.js";
import { parseDuration } from "../duration.js";
import { type Io, printJson, printTable } from "../output.js";
import { callerOptions, withCallerClient } from "./delegate.js";

interface RequestView {
  id: string;
  status: string;
  requester: string;
  delegation: string | null;
  task: string | null;
  action: string;
  resource: string;
  argsHash: string | null;
  rule: string;
  createdAt: string;
  expiresAt: string;
  decidedBy: string | null;
  reason: string | null;
  mode: string | null;
  validUntil: string | null;
  uses: number;
}

function describe(r: RequestView): string {
  return [
    `Access request ${r.id} (${r.status})`,
    `  requester:  ${r.requester}${r.delegation ? ` under delegation ${r.delegation}` : ""}${r.task ? ` for task ${r.task}` : ""}`,
    `  wants:      ${r.action} ${r.resource}${r.argsHash ? ` (arguments sha256 ${r.argsHash.slice(0, 16)}…)` : ""}`,
    `  because:    ${r.rule}`,
    `  created:    ${r.createdAt}, lapses ${r.expiresAt}`,
    ...(r.decidedBy ? [`  decided by: ${r.decidedBy}${r.reason ? ` (${r.reason})` : ""}${r.mode ? `, ${r.mode === "once" ? "single use" : `until ${r.validUntil}`}` : ""}, used ${r.uses}×`] : []),
  ].join("\n");
}

export function registerRequests(program: Command, io: Io): void {
  const requests = program.command("requests").description("Access requests: actions waiting for a person's approval (just-in-time access)");

  callerOptions(
    requests
      .command("ls")
      .description("List access requests")
      .addOption(new Option("--status <status>", "only requests in this state").choices(["pending", "approved", "denied", "consumed", "expired"]))
      .option("--task <id>", "only this task's requests"),
  ).action(async (opts: { status?: string; task?: string }, command: Command) => {
    await withCallerClient(command, async (client, options) => {
      const query = new URLSearchParams(Object.entries({ status: opts.status, task: opts.task }).filter((e): e is [string, string] => e[1] !== undefined));
      const { requests: list } = await client.request<{ requests: RequestView[] }>("GET", `/v1/access/requests${query.size ? `?${query}` : ""}`);
      if (options.format === "json") printJson(io, list);
      else printTable(io, ["ID", "STATUS", "REQUESTER", "RESOURCE", "TASK", "CREATED"], list.map((r) => [r.id, r.status, r.requester, r.resource, r.task, r.createdAt]));
    });
  });

  callerOptions(requests.command("show <id>").description("Show one access request")).action(async (id: string, _opts: unknown, command: Command) => {
    await withCallerClient(command, async (client, options) => {
      const { request } = await client.request<{ request: RequestView }>("GET", `/v1/access/requests/${encodeURIComponent(id)}`);
      if (options.format === "json") printJson(io, request);
      else io.out(describe(request));
    });
  });

  callerOptions(
    requests
      .command("approve <id>")
      .description("Approve a pending request: the same call (same agent, delegation, resource and arguments) then passes once, or for a time box")
      .option("--reason <text>", "why (recorded in the audit log)")
      .option("--once", "single use (the default)")
      .option("--for <duration>", "time-boxed instead: matching calls pass until this much time has passed, e.g. 15m")
      .addHelpText("after", "\nOnly a person whose role may approve the resource (`approve:` in the role) can decide, never the requester.\nExamples:\n  mandate requests approve ar-0123456789abcdef --reason 'rollback agreed in #incident'\n  mandate requests approve ar-0123456789abcdef --for 15m"),
  ).action(async (id: string, opts: { reason?: string; once?: boolean; for?: string }, command: Command) => {
    if (opts.once && opts.for) throw new MandateError("INVALID_ARGUMENT", "choose --once or --for <duration>, not both");
    const forSeconds = opts.for ? Math.ceil(parseDuration(opts.for, "--for") / 1000) : undefined;
    await withCallerClient(command, async (client, options) => {
      const { request } = await client.request<{ request: RequestView }>("POST", `/v1/access/requests/${encodeURIComponent(id)}/approve`, { ...(opts.reason ? { reason: opts.reason } : {}), mode: forSeconds ? "window" : "once", ...(forSeconds ? { forSeconds } : {}) });
      if (options.format === "json") printJson(io, request);
      else io.out(describe(request));
    });
  });

  callerOptions(
    requests
      .command("deny <id>")
      .description("Deny a pending request")
      .requiredOption("--reason <text>", "why (recorded in the audit log and shown to the requester)"),
  ).action(async (id: string, opts: { reason: string }, command: Command) => {
    await withCallerClient(command, async (client, options) => {
      const { request } = await client.request<{ request: RequestView }>("POST", `/v1/access/requests/${encodeURIComponent(id)}/deny`, { reason: opts.reason });
      if (options.format === "json") printJson(io, request);
      else io.out(describe(request));
    });
  });
}
