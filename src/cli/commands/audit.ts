import { type Command, Option } from "commander";
import { readFile } from "node:fs/promises";
import {
  type AuditEvent,
  type AuditTrace,
  type ChainVerification,
  type ConsistencyProofResult,
  type InclusionProofResult,
  formatTrace,
  verifyCheckpoint,
  verifyConsistency,
  verifyInclusion,
} from "../../audit/index.js";
import { writeFileAtomic } from "../../client/files.js";
import { MandateError } from "../../errors/index.js";
import { connectAdmin } from "../admin-client.js";
import { parseDuration } from "../duration.js";
import { type Io, printJson, printTable } from "../output.js";
import { adminOptions, mergedOptions, withAdminClient } from "./shared.js";

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

interface CheckpointList {
  verifierKey: string;
  checkpoints: { treeSize: number; rootHash: string; createdAt: string; note: string }[];
}

/** Offline: every note must carry a valid signature of the key, and tree sizes must only grow. */
export function verifyCheckpointFile(text: string, verifierKey: string): { ok: boolean; checkpoints: number; latestSize: number; problems: string[] } {
  const problems: string[] = [];
  let notes: { note?: unknown }[];
  try {
    // Either the JSON of `audit checkpoints --out`, or the checkpoints.jsonl the export directory receives.
    const whole = (() => {
      try {
        return JSON.parse(text) as Partial<CheckpointList>;
      } catch {
        return undefined;
      }
    })();
    notes = Array.isArray(whole?.checkpoints)
      ? whole.checkpoints
      : text.split("\n").filter((line) => line.trim()).map((line) => JSON.parse(line) as { note?: unknown });
  } catch {
    return { ok: false, checkpoints: 0, latestSize: 0, problems: ["the checkpoint file is neither the JSON of `mandate audit checkpoints --out` nor a checkpoints.jsonl"] };
  }
  let previous = 0;
  for (const [i, entry] of notes.entries()) {
    try {
      const checkpoint = verifyCheckpoint(String(entry?.note ?? ""), verifierKey);
      if (checkpoint.treeSize <= previous) problems.push(`checkpoint ${i + 1} (size ${checkpoint.treeSize}) does not grow the log past ${previous}`);
      previous = checkpoint.treeSize;
    } catch (error) {
      problems.push(`checkpoint ${i + 1}: ${(error as Error).message}`);
    }
  }
  if (notes.length === 0) problems.push("the file holds no checkpoints");
  return { ok: problems.length === 0, checkpoints: notes.length, latestSize: previous, problems };
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
    await withAdminClient(cmd, async (client, g) => {
      const { hash } = await client.request<{ hash: string }>("POST", "/v1/audit/hash", { value });
      if (g.format === "json") printJson(io, { hash });
      else io.out(hash);
    });
  });

  adminOptions(
    audit
      .command("trace <id>")
      .description("Show everything recorded under a task, delegation or session, as a tree in time order")
      .addHelpText("after", "\nExample:\n  mandate audit trace investigate-checkout-deploy"),
  ).action(async (id: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const trace = await client.request<AuditTrace>("GET", `/v1/audit/trace/${encodeURIComponent(id)}`);
      if (g.format === "json") printJson(io, trace);
      else io.out(trace.events === 0 ? `no events recorded under ${id}` : formatTrace(trace));
    });
  });

  adminOptions(
    audit
      .command("checkpoints")
      .description("List the signed checkpoints (C2SP signed notes); --out saves them for offline verification")
      .option("--now", "sign a checkpoint now if the log grew")
      .option("--out <file>", "write the checkpoints and the verifier key as JSON"),
  ).action(async (opts: { now?: boolean; out?: string }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      if (opts.now) await client.request("POST", "/v1/audit/checkpoints", {});
      const result = await client.request<CheckpointList>("GET", "/v1/audit/checkpoints");
      if (opts.out) {
        await writeFileAtomic(opts.out, `${JSON.stringify(result, null, 2)}\n`, 0o644);
        io.out(`Wrote ${result.checkpoints.length} checkpoint(s) to ${opts.out}. Verify offline with:\n  mandate audit verify --checkpoints ${opts.out} --public-key <file holding: ${result.verifierKey}>`);
      } else if (g.format === "json") printJson(io, result);
      else {
        io.out(`verifier key: ${result.verifierKey}\n`);
        printTable(io, ["TREE SIZE", "ROOT (SHA-256)", "SIGNED AT"], result.checkpoints.map((c) => [c.treeSize, c.rootHash, c.createdAt]));
      }
    });
  });

  adminOptions(audit.command("public-key").description("Print the audit verifier key (keep a copy where the log's operators cannot change it)")).action(async (_opts: unknown, cmd: Command) => {
    const client = await connectAdmin(mergedOptions(cmd));
    try {
      io.out((await client.request<CheckpointList>("GET", "/v1/audit/checkpoints")).verifierKey);
    } finally {
      client.close();
    }
  });

  adminOptions(audit.command("prove <seq>").description("Prove that event SEQ is in the log: an RFC 6962 inclusion proof against the latest signed checkpoint")).action(async (seqText: string, _opts: unknown, cmd: Command) => {
    const g = mergedOptions(cmd);
    const seq = Number(seqText);
    if (!Number.isSafeInteger(seq) || seq < 1) throw new MandateError("INVALID_ARGUMENT", "SEQ is an event's sequence number (1, 2, …)");
    const client = await connectAdmin(g);
    try {
      const [proof, list] = await Promise.all([client.request<InclusionProofResult>("GET", `/v1/audit/prove/${seq}`), client.request<CheckpointList>("GET", "/v1/audit/checkpoints")]);
      const hex = (h: string) => Buffer.from(h, "hex");
      const signed = verifyCheckpoint(proof.checkpoint, list.verifierKey);
      const ok = signed.rootHash.toString("hex") === proof.rootHash && verifyInclusion(hex(proof.leafHash), seq - 1, proof.treeSize, proof.proof.map(hex), hex(proof.rootHash));
      if (g.format === "json") printJson(io, { ...proof, verified: ok });
      else io.out(`${ok ? "OK" : "FAILED"}: event ${seq} (leaf ${proof.leafHash}) is ${ok ? "" : "NOT "}included in signed checkpoint ${proof.treeSize} (root ${proof.rootHash}), proof of ${proof.proof.length} hashes.`);
      if (!ok) throw new MandateError("AUDIT_TAMPERED", `inclusion proof for event ${seq} does not verify`);
    } finally {
      client.close();
    }
  });

  adminOptions(audit.command("consistency <old> <new>").description("Prove that checkpoint NEW extends checkpoint OLD (RFC 6962 consistency proof)")).action(async (oldText: string, newText: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const proof = await client.request<ConsistencyProofResult>("GET", `/v1/audit/consistency?old=${encodeURIComponent(oldText)}&new=${encodeURIComponent(newText)}`);
      const hex = (h: string) => Buffer.from(h, "hex");
      const ok = verifyConsistency(proof.oldSize, proof.newSize, hex(proof.oldRoot), hex(proof.newRoot), proof.proof.map(hex));
      if (g.format === "json") printJson(io, { ...proof, verified: ok });
      else io.out(`${ok ? "OK" : "FAILED"}: checkpoint ${proof.newSize} ${ok ? "extends" : "does NOT extend"} checkpoint ${proof.oldSize} (proof of ${proof.proof.length} hashes).`);
      if (!ok) throw new MandateError("AUDIT_TAMPERED", "consistency proof does not verify");
    });
  });

  adminOptions(
    audit
      .command("verify")
      .description("Recompute the audit hash chain and signed checkpoints; report exactly what was altered, inserted or removed")
      .option("--checkpoints <file>", "offline: verify a saved checkpoint file (from `audit checkpoints --out`) …")
      .option("--public-key <file>", "… with only this verifier key"),
  ).action(async (opts: { checkpoints?: string; publicKey?: string }, cmd: Command) => {
    const g = mergedOptions(cmd);
    if (opts.checkpoints || opts.publicKey) {
      if (!opts.checkpoints || !opts.publicKey) throw new MandateError("INVALID_ARGUMENT", "offline verification needs both --checkpoints and --public-key");
      const result = verifyCheckpointFile(await readFile(opts.checkpoints, "utf8"), (await readFile(opts.publicKey, "utf8")).trim());
      if (g.format === "json") printJson(io, result);
      else io.out(result.ok ? `OK: ${result.checkpoints} signed checkpoint(s), sizes only grow, latest ${result.latestSize}.` : `FAILED:\n${result.problems.map((p) => `  - ${p}`).join("\n")}`);
      if (!result.ok) throw new MandateError("AUDIT_TAMPERED", "the checkpoint file does not verify");
      return;
    }
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
