import { type Command, Option } from "commander";
import { type AuditEvent, type AuditTrace, type ChainVerification, formatTrace } from "../../audit/index.js";
import { MandateError } from "../../errors/index.js";
import { connectAdmin } from "../admin-client.js";
import { parseDuration } from "../duration.js";
import { type Io, printJson, printTable } from "../output.js";
import { adminOptions, mergedOptions } from "./shared.js";

/** `--since 1h` (relative) or an RFC 3339 time. */
function parseTime(value: string, flag: string): number {
  if (/^\d/.test(value) && /[-T:]/.test(value)) {
    const t = Date.parse(value);
    if (Number.isNaN(t)) throw new MandateError("INVALID_ARGUMENT", `invalid ${flag} ${JSON.stringify(value)}: use a duration (1h) or an RFC 3339 time`);
    return t;
  }
  return Date.now() - parseDuration(value, flag);
}

function summary(event: AuditEvent): string {
  const target = event.target ? Object.entries(event.target).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ") : "";
  return event.outcome.status === "error" ? `${target} ${event.outcome.message ?? ""}`.trim() : target;
}

export function registerAudit(program: Command, io: Io): void {
  const audit = program.command("audit").description("Search and verify the audit log");

  adminOptions(
    audit
      .command("search")
      .description("Find audit events, newest first")
      .option("--agent <name>", "events by this agent")
      .option("--user <name>", "events by this user")
      .option("--task <id>", "events of this task")
      .option("--type <type>", "event type, e.g. identity.join, lock.create")
      .addOption(new Option("--decision <decision>", "policy decision").choices(["allow", "deny"]))
      .option("--since <time>", "from this long ago (1h, 7d) or an RFC 3339 time")
      .option("--until <time>", "until this long ago or an RFC 3339 time")
      .option("--limit <n>", "at most this many events", "100")
      .addHelpText("after", "\nExamples:\n  mandate audit search --agent deploy-auditor --since 1h\n  mandate audit search --decision deny --since 24h --format jsonl > denials.jsonl"),
    ["table", "json", "jsonl"],
  ).action(async (opts: { agent?: string; user?: string; task?: string; type?: string; decision?: string; since?: string; until?: string; limit: string }, cmd: Command) => {
      const g = mergedOptions(cmd);
      const limit = Number(opts.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new MandateError("INVALID_ARGUMENT", "--limit takes a positive whole number");
      const params = new URLSearchParams({ limit: String(limit) });
      for (const key of ["agent", "user", "task", "type", "decision"] as const) if (opts[key]) params.set(key, opts[key]!);
      if (opts.since) params.set("since", String(parseTime(opts.since, "--since")));
      if (opts.until) params.set("until", String(parseTime(opts.until, "--until")));
      const client = await connectAdmin(g);
      try {
        const { events } = await client.request<{ events: AuditEvent[] }>("GET", `/v1/audit/events?${params}`);
        const format = g.format;
        if (format === "json") printJson(io, events);
        else if (format === "jsonl") io.out(events.map((e) => JSON.stringify(e)).join("\n") || "");
        else printTable(io, ["TIME", "TYPE", "CODE", "ACTOR", "DETAIL"], events.map((e) => [e.time, e.type, e.code, e.actor.agent ?? e.actor.user ?? e.actor.spiffeId ?? e.actor.kind, summary(e)]));
      } finally {
        client.close();
      }
    });

  adminOptions(
    audit
      .command("hash <value>")
      .description("Print the keyed HMAC of a candidate value, to compare with a field the audit log stores hashed")
      .addHelpText("after", "\nExample:\n  mandate audit hash 'dump all secrets'   # then: mandate audit search --format json | grep <hash>"),
  ).action(async (value: string, _opts: unknown, cmd: Command) => {
    const g = mergedOptions(cmd);
    const client = await connectAdmin(g);
    try {
      const { hash } = await client.request<{ hash: string }>("POST", "/v1/audit/hash", { value });
      if (g.format === "json") printJson(io, { hash });
      else io.out(hash);
    } finally {
      client.close();
    }
  });

  adminOptions(
    audit
      .command("trace <id>")
      .description("Show everything recorded under a task, delegation or session, as a tree in time order")
      .addHelpText("after", "\nExample:\n  mandate audit trace investigate-checkout-deploy"),
  ).action(async (id: string, _opts: unknown, cmd: Command) => {
    const g = mergedOptions(cmd);
    const client = await connectAdmin(g);
    try {
      const trace = await client.request<AuditTrace>("GET", `/v1/audit/trace/${encodeURIComponent(id)}`);
      if (g.format === "json") printJson(io, trace);
      else io.out(trace.events === 0 ? `no events recorded under ${id}` : formatTrace(trace));
    } finally {
      client.close();
    }
  });

  adminOptions(audit.command("verify").description("Recompute the audit hash chain and report exactly what was altered, inserted or removed")).action(async (_opts: unknown, cmd: Command) => {
    const g = mergedOptions(cmd);
    const client = await connectAdmin(g);
    try {
      const result = await client.request<ChainVerification>("GET", "/v1/audit/verify");
      if (g.format === "json") printJson(io, result);
      else if (result.ok) io.out(`OK: ${result.events} events, chain intact up to event ${result.headSeq}.`);
      else io.out([`FAILED: ${result.problems.length} problem(s) in ${result.events} events:`, ...result.problems.map((p) => `  - ${p.message}`)].join("\n"));
      if (!result.ok) throw new MandateError("AUDIT_TAMPERED", `the audit log does not verify (${result.problems.length} problem(s))`, { details: { problems: result.problems.length } });
    } finally {
      client.close();
    }
  });
}
