import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { AuditCheckpointer, GENESIS_CHAIN_HASH, StoreAuditLog, canonicalJson, eventLeafHash, nextChainHash, searchAuditEvents, stampEvent, verifyAuditChain } from "../src/audit/index.js";
import { Store } from "../src/store/index.js";

/**
 * Audit log speed, each against a baseline in the same run:
 *  - durable appends with 50 concurrent writers vs raw SQLite inserts, one durable
 *    commit each, at the same synchronous=FULL setting;
 *  - `verify` over a log of AUDIT_BENCH_EVENTS events (default 1M);
 *  - an indexed search on that log.
 *   npm run build && node dist/bench/audit.js
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WRITERS = 50;
const EVENTS = Number(process.env.AUDIT_BENCH_EVENTS ?? 1_000_000);

function sampleEvent(i: number) {
  return {
    type: i % 10 === 0 ? "mcp.tool.call" : "identity.renew",
    code: i % 10 === 0 ? "PERMISSION_DENIED" : "OK",
    actor: { kind: "agent" as const, agent: `agent-${i % 500}`, spiffeId: `spiffe://mandate.local/agent/agent-${i % 500}`, instance: `inst-${i % 2000}` },
    correlation: { task: `task-${i % 5000}` },
    target: { server: "k8s", tool: i % 10 === 0 ? "kubectl_exec" : "read_pods" },
    ...(i % 10 === 0 ? { decision: { allow: false, reasons: ["denied by role incident-reader"] } } : {}),
    outcome: { status: i % 10 === 0 ? ("error" as const) : ("ok" as const), latencyMs: i % 50 },
  };
}

async function rawSqliteRate(dir: string): Promise<number> {
  const db = new BetterSqlite3(join(dir, "raw.db"));
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec("create table e (seq integer primary key autoincrement, id text unique, time integer, type text, body text)");
  const insert = db.prepare("insert into e (id, time, type, body) values (?, ?, ?, ?)");
  const deadline = Date.now() + SECONDS * 1000;
  let n = 0;
  const t0 = Date.now();
  // 50 writers, each inserting and committing one event at a time (autocommit: one durable commit per event).
  await Promise.all(
    Array.from({ length: WRITERS }, async (_, w) => {
      while (Date.now() < deadline) {
        const event = stampEvent(sampleEvent(n));
        insert.run(event.id, Date.now(), event.type, JSON.stringify(event));
        n++;
        if (n % WRITERS === w) await new Promise((r) => setImmediate(r));
      }
    }),
  );
  db.close();
  return n / ((Date.now() - t0) / 1000);
}

async function mandateAppendRate(store: Store): Promise<number> {
  const log = new StoreAuditLog(store);
  const deadline = Date.now() + SECONDS * 1000;
  let n = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: WRITERS }, async () => {
      while (Date.now() < deadline) {
        await log.append(sampleEvent(n));
        n++;
      }
    }),
  );
  return n / ((Date.now() - t0) / 1000);
}

/** Writes a valid chain of `count` events straight into the table, in large transactions. */
function seed(path: string, count: number): void {
  const db = new BetterSqlite3(path);
  const head = db.prepare("select seq, chain_hash from audit_chain_head where id = 1").get() as { seq: number; chain_hash: string };
  let seq = Number(head.seq);
  let chain = head.chain_hash ?? GENESIS_CHAIN_HASH;
  const insert = db.prepare(
    "insert into audit_events (id, time, type, code, actor_spiffe_id, actor_agent, actor_user, task_id, decision, outcome, body, chain_seq, leaf_hash, chain_hash) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
  );
  const base = Date.now() - count * 10;
  const batch = db.transaction((from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const input = sampleEvent(i);
      const time = base + i * 10;
      const event = stampEvent(input, time);
      const body = canonicalJson(event);
      const leaf = eventLeafHash(body);
      seq++;
      chain = nextChainHash(chain, leaf);
      insert.run(event.id, time, event.type, event.code, input.actor.spiffeId, input.actor.agent, null, input.correlation.task, input.decision ? "deny" : null, input.outcome.status, body, seq, leaf, chain);
    }
    db.prepare("update audit_chain_head set seq = ?, chain_hash = ? where id = 1").run(seq, chain);
  });
  for (let from = 0; from < count; from += 50_000) {
    batch(from, Math.min(count, from + 50_000));
    process.stdout.write(`\r  seeded ${Math.min(count, from + 50_000).toLocaleString()} / ${count.toLocaleString()}`);
  }
  process.stdout.write("\n");
  db.close();
}

const dir = await mkdtemp(join(tmpdir(), "mandate-audit-bench-"));
try {
  console.log(`Raw SQLite inserts, ${WRITERS} writers, one durable commit each, ${SECONDS}s…`);
  const raw = await rawSqliteRate(dir);
  console.log(`Mandate durable appends (canonical JSON, redaction, hash chain, group commit), ${WRITERS} writers, ${SECONDS}s…`);
  const store = await Store.open({ dataDir: join(dir, "mandate") });
  const appended = await mandateAppendRate(store);
  await store.close();

  console.log(`Seeding a chained log of ${EVENTS.toLocaleString()} events…`);
  const verifyDir = join(dir, "verify");
  const seedStore = await Store.open({ dataDir: verifyDir });
  await seedStore.close();
  seed(join(verifyDir, "mandate.db"), EVENTS);
  const big = await Store.open({ dataDir: verifyDir });
  // One signed checkpoint over the whole log, so verify also recomputes the Merkle root.
  const checkpointer = await AuditCheckpointer.open(big, "mandate.local/audit");
  await checkpointer.checkpointIfDue(true);
  console.log("Verifying (hash chain and signed checkpoint)…");
  const t0 = performance.now();
  const verification = await verifyAuditChain(big, {
    verifierKey: checkpointer.verifierKey,
    onProgress: (n) => {
      if (n % 100_000 === 0) process.stdout.write(`\r  verified ${n.toLocaleString()}`);
    },
  });
  if (verification.checkpointsVerified !== 1) throw new Error("the checkpoint was not verified");
  const verifySeconds = (performance.now() - t0) / 1000;
  process.stdout.write("\n");
  if (!verification.ok) throw new Error(`seeded log does not verify: ${verification.problems[0]?.message}`);
  const searches: number[] = [];
  for (let i = 0; i < 7; i++) {
    const s0 = performance.now();
    const found = await searchAuditEvents(big, { agent: `agent-${i * 10}`, decision: i % 2 ? "deny" : undefined, since: new Date(Date.now() - 3 * 24 * 3600_000), limit: 100 });
    searches.push(performance.now() - s0);
    if (found.length === 0) throw new Error("search found nothing");
  }
  searches.sort((a, b) => a - b);
  await big.close();

  const rows: [string, string, string][] = [
    ["raw SQLite inserts, 1 durable commit each (baseline)", `${raw.toFixed(0)}/s`, "1.00"],
    [`Mandate durable appends, ${WRITERS} writers`, `${appended.toFixed(0)}/s`, `${(appended / raw).toFixed(2)} of baseline (target ≥ 0.50 and ≥ 5,000/s)`],
    [`verify ${verification.events.toLocaleString()} events`, `${(verification.events / verifySeconds).toFixed(0)}/s`, `${verifySeconds.toFixed(1)} s (target ≥ 200,000/s)`],
    [`indexed search on ${EVENTS.toLocaleString()} events (median of 7)`, `${searches[3]!.toFixed(1)} ms`, `max ${searches[6]!.toFixed(1)} ms (target < 200 ms)`],
  ];
  const width = Math.max(...rows.map((r) => r[0].length));
  console.log("");
  for (const [name, value, note] of rows) console.log(`${name.padEnd(width)}  ${value.padStart(12)}  ${note}`);
} finally {
  await rm(dir, { recursive: true, force: true });
}
