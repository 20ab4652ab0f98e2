import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as netConnect, createServer as createNetServer } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import pg from "pg";
import { readCredentials } from "../src/agent/index.js";
import { runCli } from "../src/cli/index.js";
import { startControlPlane } from "../src/server/index.js";

/**
 * Database proxy overhead, in one run on one machine: `pgbench -S` (select-only, simple
 * protocol) against the same PostgreSQL server directly and through Mandate (TLS with a
 * real agent X509-SVID, every statement parsed with libpg-query, authorized by the real
 * policy engine against a role applied with `mandate roles apply`, and audited through
 * the write-ahead journal into the hash-chained audit log). Bounded: BENCH_SECONDS (20)
 * per side, BENCH_DB_CLIENTS (16) connections.
 */
const seconds = Number(process.env.BENCH_SECONDS ?? 20);
const clients = Number(process.env.BENCH_DB_CLIENTS ?? 16);
const host = process.env.BENCH_PGHOST ?? "127.0.0.1";
const port = Number(process.env.BENCH_PGPORT ?? 5432);
const benchDb = "mandate_bench";

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024, timeout: (seconds + 120) * 1000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${command} ${args.join(" ")}: ${stderr || error.message}`));
      else resolve(stdout + stderr);
    });
  });
}

interface PgbenchResult {
  tps: number;
  transactions: number;
  failed: number;
  p50: number;
  p99: number;
}

/** pgbench with a per-transaction log, so percentiles come from every transaction. */
async function pgbench(conn: string, env: NodeJS.ProcessEnv): Promise<PgbenchResult> {
  const dir = await mkdtemp(join(tmpdir(), "pgbench-"));
  try {
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn("pgbench", ["-S", "-n", "-c", String(clients), "-j", "2", "-T", String(seconds), "-l", "--log-prefix", join(dir, "log"), conn], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
      let text = "";
      child.stdout.on("data", (c: Buffer) => (text += c.toString()));
      child.stderr.on("data", (c: Buffer) => (text += c.toString()));
      child.once("exit", (code) => (code === 0 ? resolve(text) : reject(new Error(`pgbench exited ${code}: ${text}`))));
    });
    const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1] ?? 0);
    const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1] ?? 0);
    const failed = Number(/number of failed transactions: (\d+)/.exec(out)?.[1] ?? 0);
    const { readdir, readFile } = await import("node:fs/promises");
    const latencies: number[] = [];
    for (const file of await readdir(dir)) {
      for (const line of (await readFile(join(dir, file), "utf8")).split("\n")) {
        const fields = line.split(" ");
        if (fields.length >= 3) latencies.push(Number(fields[2]) / 1000);
      }
    }
    latencies.sort((a, b) => a - b);
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
    return { tps, transactions, failed, p50: at(0.5), p99: at(0.99) };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The floor any Node proxy pays here: SSLRequest answered, TLS terminated with the same
 * kind of certificate, bytes piped to the server, nothing parsed, authorized or audited.
 */
async function startTlsRelay(key: string, cert: string): Promise<{ port: number; close(): void }> {
  const tlsServer = createTlsServer({ key, cert, minVersion: "TLSv1.2" });
  tlsServer.on("secureConnection", (tls) => {
    const upstream = netConnect({ host, port });
    upstream.setNoDelay(true);
    tls.pipe(upstream).pipe(tls);
    const end = () => {
      tls.destroy();
      upstream.destroy();
    };
    tls.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  const server = createNetServer((raw) => {
    raw.setNoDelay(true);
    raw.once("data", () => {
      raw.write("S");
      tlsServer.emit("connection", raw);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return { port: (server.address() as { port: number }).port, close: () => server.close() };
}

/** The plainest relay there is: bytes piped both ways in Node, no TLS, nothing parsed. */
async function startTcpRelay(): Promise<{ port: number; close(): void }> {
  const server = createNetServer((client) => {
    client.setNoDelay(true);
    const upstream = netConnect({ host, port });
    upstream.setNoDelay(true);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return { port: (server.address() as { port: number }).port, close: () => server.close() };
}

/** socat, if installed: a relay nobody here wrote (one forked C process per connection). */
async function startSocat(): Promise<{ port: number; cpuSeconds(): number; close(): Promise<void> } | undefined> {
  const found = await run("sh", ["-c", "command -v socat || true"]);
  if (!found.trim()) return undefined;
  const free = createNetServer();
  await new Promise<void>((resolve) => free.listen(0, "127.0.0.1", () => resolve()));
  const relayPort = (free.address() as { port: number }).port;
  await new Promise<void>((resolve) => free.close(() => resolve()));
  const child = spawn("socat", [`TCP-LISTEN:${relayPort},bind=127.0.0.1,fork,reuseaddr,nodelay`, `TCP:${host}:${port},nodelay`], { stdio: "ignore" });
  for (let i = 0; i < 100; i++) {
    const up = await new Promise<boolean>((resolve) => {
      const probe = netConnect({ host: "127.0.0.1", port: relayPort }, () => {
        probe.destroy();
        resolve(true);
      });
      probe.on("error", () => resolve(false));
    });
    if (up) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    port: relayPort,
    /** the listener's own CPU and its reaped per-connection children's (utime, stime, cutime, cstime) */
    cpuSeconds: () => {
      const fields = readFileSync(`/proc/${child.pid}/stat`, "utf8").split(") ")[1]!.split(" ");
      return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
    },
    close: async () => {
      child.kill();
      await new Promise((r) => child.once("exit", r));
    },
  };
}

/** Busy CPU seconds of the whole machine so far (every process: pgbench, PostgreSQL, relays). */
function machineCpuSeconds(): number {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal: busy is everything but idle and iowait
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = fields;
  return (user + nice + system + irq + softirq + steal) / 100;
}

interface Measured extends PgbenchResult {
  /** busy CPU of the whole machine per transaction, µs (includes anything else running) */
  machineCpuUsPerTx: number;
  /** CPU of the relay itself per transaction, µs, where it can be measured */
  relayCpuUsPerTx?: number;
}

async function measured(conn: string, relayCpu?: () => number): Promise<Measured> {
  const machineBefore = machineCpuSeconds();
  const relayBefore = relayCpu?.() ?? 0;
  const result = await pgbench(conn, {});
  // Forked relay children are counted once reaped.
  await new Promise((r) => setTimeout(r, 200));
  const machine = machineCpuSeconds() - machineBefore;
  const out: Measured = { ...result, machineCpuUsPerTx: Math.round((machine * 1e6) / Math.max(1, result.transactions)) };
  if (relayCpu) out.relayCpuUsPerTx = Math.round(((relayCpu() - relayBefore) * 1e6) / Math.max(1, result.transactions));
  return out;
}

function ownCpuSeconds(): number {
  const cpu = process.cpuUsage();
  return (cpu.user + cpu.system) / 1e6;
}

async function prepareDatabase(): Promise<void> {
  const admin = new pg.Client({ host, port, user: "postgres", database: "test" });
  await admin.connect();
  const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [benchDb]);
  if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${benchDb}`);
  await admin.end();
  await run("pgbench", ["-i", "-s", "1", "-q", "-h", host, "-p", String(port), "-U", "postgres", benchDb]);
}

function ratio(a: number, b: number): number {
  return b > 0 ? Math.round((a / b) * 1000) / 1000 : 0;
}

async function main(): Promise<void> {
  await prepareDatabase();
  const dataDir = await mkdtemp(join(tmpdir(), "mandate-bench-db-"));
  const plane = await startControlPlane({ dataDir, listen: "127.0.0.1:0", logLevel: "silent", caActivationDelayMs: 0, db: { listen: "127.0.0.1:0", ...(process.env.BENCH_DB_DURABILITY === "writes" ? { auditDurability: "writes" as const } : {}) } });
  const quiet = { out: () => undefined, err: (t: string) => process.stderr.write(t) };
  try {
    const rolesFile = join(dataDir, "roles.yaml");
    await writeFile(rolesFile, "kind: role\nname: bench-reader\nallow:\n  db:\n    - databases: [bench]\n      users: [postgres]\n      statements: [select, session, transaction]\n");
    await runCli(["node", "mandate", "roles", "apply", "-f", rolesFile, "--data-dir", dataDir], quiet);
    await runCli(["node", "mandate", "db", "add", "bench", "--uri", `postgres://postgres@${host}:${port}/${benchDb}?sslmode=disable`, "--data-dir", dataDir], quiet);
    const out: string[] = [];
    await runCli(["node", "mandate", "agents", "add", "bench-agent", "--role", "bench-reader", "--data-dir", dataDir, "--format", "json"], { out: (t) => out.push(t), err: quiet.err });
    const creds = join(dataDir, "agent-creds");
    await runCli(["node", "mandate", "daemon", "--auth-server", plane.url, "--join-token", JSON.parse(out.join("")).token, "--out", creds, "--oneshot"], quiet);
    if (!(await readCredentials(creds))) throw new Error("the bench agent did not join");
    const proxyPort = plane.context.db!.port!;
    // BENCH_DB_ONLY=mandate skips the baselines (for profiling the proxy alone).
    const only = process.env.BENCH_DB_ONLY === "mandate";
    const none: Measured = { tps: 0, transactions: 0, failed: 0, p50: 0, p99: 0, machineCpuUsPerTx: 0 };
    const direct = only ? none : await measured(`host=${host} port=${port} user=postgres dbname=${benchDb} sslmode=disable`);
    const serverSsl = await (async () => {
      const client = new pg.Client({ host, port, user: "postgres", database: benchDb });
      await client.connect();
      const on = (await client.query("SHOW ssl")).rows[0]?.ssl === "on";
      await client.end();
      return on;
    })();
    // Direct over TLS to PostgreSQL itself, when the server has ssl on.
    const directTls = only || !serverSsl ? undefined : await measured(`host=${host} port=${port} user=postgres dbname=${benchDb} sslmode=require`);
    let tcpRelay = none;
    let socatRelay: Measured | undefined;
    let tlsRelay = none;
    if (!only) {
      const socat = await startSocat();
      if (socat) {
        socatRelay = await measured(`host=127.0.0.1 port=${socat.port} user=postgres dbname=${benchDb} sslmode=disable`, () => socat.cpuSeconds());
        await socat.close();
      }
      const tcp = await startTcpRelay();
      tcpRelay = await measured(`host=127.0.0.1 port=${tcp.port} user=postgres dbname=${benchDb} sslmode=disable`, ownCpuSeconds);
      tcp.close();
      const relay = await startTlsRelay(readFileSync(join(creds, "svid_key.pem"), "utf8"), readFileSync(join(creds, "svid.pem"), "utf8"));
      tlsRelay = await measured(`host=127.0.0.1 port=${relay.port} user=postgres dbname=${benchDb} sslmode=require`, ownCpuSeconds);
      relay.close();
    }
    const eluBefore = performance.eventLoopUtilization();
    const cpuBefore = process.cpuUsage();
    const proxied = await measured(`host=127.0.0.1 port=${proxyPort} user=postgres dbname=bench sslmode=require sslcert=${join(creds, "svid.pem")} sslkey=${join(creds, "svid_key.pem")}`, ownCpuSeconds);
    const elu = performance.eventLoopUtilization(eluBefore);
    const cpu = process.cpuUsage(cpuBefore);
    await plane.context.db!.journal.flush();
    const stats = plane.context.db!.journal.stats;
    const result = {
      when: new Date().toISOString(),
      seconds,
      clients,
      direct,
      directTls: directTls ?? "the server has ssl off",
      ...(socatRelay ? { socatRelay } : { socatRelay: "socat is not installed" }),
      tcpRelay,
      tlsRelay,
      mandate: proxied,
      ratios: {
        ...(directTls ? { directTls: ratio(directTls.tps, direct.tps) } : {}),
        ...(socatRelay ? { socatRelay: ratio(socatRelay.tps, direct.tps) } : {}),
        nodeTcpRelay: ratio(tcpRelay.tps, direct.tps),
        nodeTlsRelay: ratio(tlsRelay.tps, direct.tps),
        mandate: ratio(proxied.tps, direct.tps),
      },
      tlsRelayRatio: Math.round((tlsRelay.tps / direct.tps) * 1000) / 1000,
      throughputRatio: Math.round((proxied.tps / direct.tps) * 1000) / 1000,
      addedLatencyMs: { p50: Math.round((proxied.p50 - direct.p50) * 1000) / 1000, p99: Math.round((proxied.p99 - direct.p99) * 1000) / 1000 },
      audit: { intents: stats.intents, journalFsyncs: stats.batches, statementsPerFsync: Math.round((stats.intents / Math.max(1, stats.batches)) * 10) / 10, folded: stats.folded },
      proxyProcess: { eventLoopUtilization: Math.round(elu.utilization * 1000) / 1000, cpuSecondsPerSecond: Math.round(((cpu.user + cpu.system) / 1e6 / seconds) * 100) / 100, cpuMicrosecondsPerStatement: Math.round((cpu.user + cpu.system) / Math.max(1, proxied.transactions)) },
      classification: { cacheHits: plane.context.db!.cache.hits, cacheMisses: plane.context.db!.cache.misses },
    };
    console.log(JSON.stringify(result, null, 2));
    const row = (name: string, m: Measured | undefined) =>
      m ? `  ${name.padEnd(34)} ${m.tps.toFixed(0).padStart(7)} tps  ratio ${ratio(m.tps, direct.tps).toFixed(3)}  p50 ${m.p50.toFixed(2)} ms  p99 ${m.p99.toFixed(2)} ms  machine CPU ${m.machineCpuUsPerTx} µs/tx${m.relayCpuUsPerTx !== undefined ? `  relay CPU ${m.relayCpuUsPerTx} µs/tx` : ""}` : `  ${name.padEnd(34)} -`;
    console.log(["", row("direct", direct), row("direct over TLS", directTls), row("socat TCP relay", socatRelay), row("Node TCP pipe", tcpRelay), row("Node TLS relay", tlsRelay), row("Mandate", proxied)].join("\n"));
    if (!serverSsl) console.log("  (direct over TLS: the server has ssl off)");
    console.log(`\npgbench -S -c ${clients} -T ${seconds}: direct ${direct.tps.toFixed(0)} tps, Mandate ${proxied.tps.toFixed(0)} tps → ratio ${result.throughputRatio} (target ≥ 0.60); added latency p50 ${result.addedLatencyMs.p50} ms, p99 ${result.addedLatencyMs.p99} ms; failed transactions: direct ${direct.failed}, Mandate ${proxied.failed}; a bare Node TLS relay: ${tlsRelay.tps.toFixed(0)} tps (ratio ${result.tlsRelayRatio})`);
  } finally {
    await plane.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

await main();
