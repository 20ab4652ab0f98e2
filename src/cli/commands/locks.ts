import type { Command } from "commander";
import { MandateError } from "../../errors/index.js";
import type { Lock } from "../../identity/index.js";
import { connectAdmin } from "../admin-client.js";
import { parseDuration } from "../duration.js";
import { type Io, printJson, printTable } from "../output.js";
import { adminOptions, mergedOptions, withAdminClient } from "./shared.js";

export function registerLocks(program: Command, io: Io): void {
  const locks = program.command("locks").description("Lock identities: a locked identity cannot renew or be used anywhere in the cluster");

  adminOptions(
    locks
      .command("add")
      .description("Lock an agent, one certificate (serial) or one instance")
      .option("--agent <name>", "every identity of this agent")
      .option("--serial <hex>", "one X509-SVID, by serial number")
      .option("--instance <id>", "one joined instance (see `mandate agents show`)")
      .option("--spiffe-id <id>", "one SPIFFE ID")
      .requiredOption("--reason <text>", "why; shown to the locked party and recorded in the audit log")
      .option("--ttl <duration>", "lift the lock automatically after this long")
      .addHelpText("after", "\nExamples:\n  mandate locks add --agent deploy-auditor --reason 'prompt injection incident' --ttl 1h\n  mandate locks add --serial 3f2a... --reason 'key copied to a laptop'"),
  ).action(async (opts: { agent?: string; serial?: string; instance?: string; spiffeId?: string; reason: string; ttl?: string }, cmd: Command) => {
    const g = mergedOptions(cmd);
    const targets = (
      [
        ["agent", opts.agent],
        ["serial", opts.serial],
        ["instance", opts.instance],
        ["spiffe_id", opts.spiffeId],
      ] as const
    ).filter(([, v]) => v !== undefined);
    if (targets.length !== 1) throw new MandateError("INVALID_ARGUMENT", "give exactly one of --agent, --serial, --instance or --spiffe-id");
    const [kind, value] = targets[0]!;
    const client = await connectAdmin(g);
    try {
      const { lock } = await client.request<{ lock: Lock }>("POST", "/v1/locks", {
        target: { kind, value },
        reason: opts.reason,
        ...(opts.ttl ? { ttlSeconds: Math.round(parseDuration(opts.ttl, "--ttl") / 1000) } : {}),
      });
      if (g.format === "json") printJson(io, lock);
      else io.out(`Locked ${kind} ${value} (${lock.id})${lock.expiresAt ? ` until ${lock.expiresAt}` : ""}.`);
    } finally {
      client.close();
    }
  });

  adminOptions(locks.command("ls").alias("list").description("List locks in force")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { locks: list } = await client.request<{ locks: Lock[] }>("GET", "/v1/locks");
      if (g.format === "json") printJson(io, list);
      else printTable(io, ["ID", "TARGET", "REASON", "EXPIRES", "CREATED BY"], list.map((l) => [l.id, `${l.target.kind}:${l.target.value}`, l.reason, l.expiresAt ?? "never", l.createdBy]));
    });
  });

  adminOptions(locks.command("rm <id>").alias("remove").description("Lift a lock")).action(async (id: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { lock } = await client.request<{ lock: Lock }>("DELETE", `/v1/locks/${encodeURIComponent(id)}`);
      if (g.format === "json") printJson(io, lock);
      else io.out(`Lock ${lock.id} on ${lock.target.kind} ${lock.target.value} removed.`);
    });
  });
}
