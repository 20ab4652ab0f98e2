import { type ChildProcess, fork, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { childReady } from "./child-ready.js";
import { startHttpsRelay } from "./https-relay.js";
import type { McpTarget } from "./mcp-client.js";
import type { InterleavedResult } from "./mcp-interleaved-load.js";

/**
 * MCP proxy overhead, in one run on one machine:
 *   A. tools/call to a Streamable HTTP server (server-everything), direct vs through Mandate
 *      (HTTPS, mTLS with a real agent SVID, the real access gate over applied roles — with
 *      and without a delegation token — and a durable audit intent per call), and through
 *      a bare Node HTTPS relay (mTLS, nothing parsed): what any Node proxy adds here, and
 *      the same relay making one record durable before each forward (the floor under
 *      "no durable audit record, no action");
 *   B. the same stdio server exposed over Streamable HTTP by Mandate and by mcp-proxy (npm),
 *      the reference proxy that does no authorization and no audit. mcp-proxy runs one
 *      server process for all sessions; so does Mandate's row for a server registered
 *      `--stateless` (the like-for-like comparison). Mandate's default, one process per
 *      session, is measured beside it: at 64 clients that is 64 server processes;
 *   C. memory per idle 2025-era session;
 *   D. one client again, every target of A and the like-for-like B pair taken in turns in
 *      short slices, so that a shared machine's slow spells fall on all of them alike.
 * Each Mandate control plane runs in a process of its own (bench/mcp-plane.ts), as a
 * deployment runs one; the relays run in this process, the load generator in its own.
 * Set BENCH_SECONDS / BENCH_MCP_CONCURRENCY / BENCH_MCP_ROUNDS to change the run.
 */
const require = createRequire(import.meta.url);
const EVERYTHING = require.resolve("@modelcontextprotocol/server-everything/dist/index.js");
const MCP_PROXY = join(require.resolve("mcp-proxy").replace(/dist\/.*$/, ""), "dist/bin/mcp-proxy.mjs");
const seconds = Number(process.env.BENCH_SECONDS ?? 5);
const concurrencies = (process.env.BENCH_MCP_CONCURRENCY ?? "1,64").split(",").map(Number);
const here = fileURLToPath(new URL(".", import.meta.url));

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

async function startProcess(command: string, args: string[], env: Record<string, string>, ready: RegExp): Promise<ChildProcess> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  await childReady(child, ready, `${command} ${args.join(" ")}`, 30_000);
  return child;
}

interface LoadResult {
  completed: number;
  calls: number;
  failed: number;
  firstError: string;
  perSecond: number;
  p50: number;
  p99: number;
  /** CPU time of the process hosting the row's proxy, per call: warm-up included, session setup not */
  cpuMicrosPerCall: number;
}

/** CPU time (user + system, µs) used so far by the process that hosts a row's proxy. */
type CpuSampler = () => Promise<number>;
const ownCpu: CpuSampler = async () => (({ user, system }) => user + system)(process.cpuUsage());

function load(url: string, concurrency: number, tls?: { ca: string; cert: string; key: string }, headers?: Record<string, string>, cpuOf: CpuSampler = ownCpu): Promise<LoadResult> {
  // Sampled once the sessions are open (one question at a time to a plane process).
  let cpuBefore: Promise<number> | undefined;
  const worker = fork(join(here, "mcp-load.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  worker.send({ url, concurrency, durationMs: seconds * 1000, warmupMs: 1000, tool: "echo", arguments: { message: "bench" }, tls, headers });
  return new Promise((resolve, reject) => {
    worker.on("message", (m: { calling?: true } & Omit<LoadResult, "cpuMicrosPerCall">) => {
      if (m.calling) {
        cpuBefore = cpuOf();
        return;
      }
      void Promise.all([cpuBefore!, cpuOf()]).then(([from, to]) => resolve({ ...m, cpuMicrosPerCall: (to - from) / Math.max(1, m.calls) }));
    });
    worker.once("exit", (code) => code !== 0 && reject(new Error(`load worker exited ${code}`)));
  });
}

/** Sends `message` to a plane process and resolves with its answer. */
function ask<T>(child: ChildProcess, message: string): Promise<T> {
  return new Promise((resolve) => {
    child.once("message", (m) => resolve(m as T));
    child.send(message);
  });
}

interface Plane {
  url: string;
  tls: { ca: string; cert: string; key: string };
  delegation: Record<string, string>;
  child: ChildProcess;
  cpu: CpuSampler;
}

/** A control plane in its own process (bench/mcp-plane.ts), as a deployment runs one. */
async function startPlane(dir: string, upstream: string): Promise<Plane> {
  const child = fork(join(here, "mcp-plane.js"), [], { execArgv: ["--expose-gc"], stdio: ["ignore", "pipe", "inherit", "ipc"], env: { ...process.env, PLANE_DIR: dir, UPSTREAM_URL: upstream, EVERYTHING } });
  const ready = (await childReady(child, "json", "the bench's control plane")) as unknown as Omit<Plane, "child" | "cpu">;
  const cpu = async () => (({ cpu: c }) => c.user + c.system)(await ask<{ cpu: NodeJS.CpuUsage }>(child, "cpu"));
  return { ...ready, child, cpu };
}

const interleavedRounds = Number(process.env.BENCH_MCP_ROUNDS ?? 10);
const interleavedSliceMs = 500;
function loadInterleaved(targets: (McpTarget & { name: string })[]): Promise<InterleavedResult[]> {
  const worker = fork(join(here, "mcp-interleaved-load.js"), [], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  worker.send({ targets, rounds: interleavedRounds, sliceMs: interleavedSliceMs, warmupMs: 1000, tool: "echo", arguments: { message: "bench" } });
  return new Promise((resolve, reject) => {
    worker.once("message", (m) => resolve(m as InterleavedResult[]));
    worker.once("exit", (code) => code !== 0 && reject(new Error(`interleaved load worker exited ${code}`)));
  });
}

const dataDir = await mkdtemp(join(tmpdir(), "mandate-bench-mcp-"));
const children: ChildProcess[] = [];
const rows: string[] = [];
const results: Record<string, unknown> = {};
try {
  const upstreamPort = await freePort();
  children.push(await startProcess(process.execPath, [EVERYTHING, "streamableHttp"], { PORT: String(upstreamPort) }, /listening on port/i));
  const upstream = `http://127.0.0.1:${upstreamPort}/mcp`;
  const proxyPort = await freePort();
  children.push(await startProcess(process.execPath, [MCP_PROXY, "--port", String(proxyPort), "--host", "127.0.0.1", "--server", "stream", "--no-eventStore", "--", process.execPath, EVERYTHING, "stdio"], {}, /starting server on port/i));
  const reference = `http://127.0.0.1:${proxyPort}/mcp`;

  const plane = await startPlane(dataDir, upstream);
  children.push(plane.child);
  const tls = plane.tls;
  // The same proxy with its data directory on tmpfs, where fsync is nearly free: what the proxy costs apart from the disk.
  const shmDir = existsSync("/dev/shm") ? await mkdtemp(join("/dev/shm", "mandate-bench-mcp-")) : undefined;
  const fast = shmDir ? await startPlane(shmDir, upstream) : undefined;
  if (fast) children.push(fast.child);
  const relay = await startHttpsRelay(upstream, tls.ca);
  const relayTls = { ca: relay.ca, cert: tls.cert, key: tls.key };
  // The same relay making one record durable before each forward: the floor under "no durable audit, no action".
  const durableRelay = await startHttpsRelay(upstream, tls.ca, { durableRecordsIn: dataDir });
  const durableRelayTls = { ca: durableRelay.ca, cert: tls.cert, key: tls.key };

  // A row with no answered call has no percentiles (NaN arrives over IPC as null).
  const f = (v: number | null) => (v === null || Number.isNaN(v) ? "n/a" : v.toFixed(2));
  const minus = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
  const line = (name: string, r: LoadResult, base?: LoadResult, proxied = base !== undefined) =>
    `| ${name} | ${r.perSecond.toFixed(0)} | ${f(r.p50)} | ${f(r.p99)} | ${base ? `${f(minus(r.p50, base.p50))} / ${f(minus(r.p99, base.p99))}` : ""} | ${base ? (r.perSecond / base.perSecond).toFixed(2) : ""} | ${proxied ? r.cpuMicrosPerCall.toFixed(0) : ""} | ${r.failed} |`;
  rows.push("| scenario | calls/s | p50 ms | p99 ms | added p50 / p99 ms | throughput ratio | CPU µs/call of the proxy's process | errors |", "|---|---:|---:|---:|---:|---:|---:|---:|");
  // Each proxy's code is compiled and optimized by the first few thousand calls; without an
  // unmeasured pass the first proxied row paid for it and later rows did not.
  for (const target of [plane, fast].filter((p) => p !== undefined)) await load(`${target.url}/mcp/http`, 8, target.tls, undefined, target.cpu);
  await load(relay.url, 8, relayTls);
  await load(durableRelay.url, 8, durableRelayTls);
  await load(`${plane.url}/mcp/stdio`, 8, tls, undefined, plane.cpu);
  await load(`${plane.url}/mcp/stdio-shared`, 8, tls, undefined, plane.cpu);
  for (const concurrency of concurrencies) {
    const direct = await load(upstream, concurrency);
    const bareRelay = await load(relay.url, concurrency, relayTls);
    const durableBareRelay = await load(durableRelay.url, concurrency, durableRelayTls);
    const mandate = await load(`${plane.url}/mcp/http`, concurrency, tls, undefined, plane.cpu);
    const delegated = await load(`${plane.url}/mcp/http`, concurrency, tls, plane.delegation, plane.cpu);
    const referenceStdio = await load(reference, concurrency);
    const mandateShared = await load(`${plane.url}/mcp/stdio-shared`, concurrency, tls, undefined, plane.cpu);
    const mandateStdio = await load(`${plane.url}/mcp/stdio`, concurrency, tls, undefined, plane.cpu);
    for (const r of [direct, bareRelay, durableBareRelay, mandate, delegated, referenceStdio, mandateShared, mandateStdio]) if (r.failed) process.stderr.write(`errors: ${r.firstError}\n`);
    results[`c${concurrency}`] = { direct, bareRelay, durableBareRelay, mandate, delegated, referenceStdio, mandateShared, mandateStdio };
    rows.push(line(`A. direct to Streamable HTTP server, ${concurrency} client(s)`, direct));
    rows.push(line(`A. bare Node HTTPS relay (mTLS; nothing parsed, no auth, no audit), ${concurrency}`, bareRelay, direct));
    rows.push(line(`A. the bare relay making one record durable first (write + fdatasync; nothing parsed), ${concurrency}`, durableBareRelay, direct));
    rows.push(line(`A. through Mandate (mTLS, gate, durable audit), ${concurrency}`, mandate, direct));
    rows.push(line(`A. through Mandate with a delegation token, ${concurrency}`, delegated, direct));
    if (fast) {
      const onTmpfs = await load(`${fast.url}/mcp/http`, concurrency, fast.tls, undefined, fast.cpu);
      if (onTmpfs.failed) process.stderr.write(`errors: ${onTmpfs.firstError}\n`);
      (results[`c${concurrency}`] as Record<string, unknown>).mandateTmpfs = onTmpfs;
      rows.push(line(`A. through Mandate, data directory on tmpfs, ${concurrency}`, onTmpfs, direct));
    }
    rows.push(line(`B. stdio server via mcp-proxy (no auth, no audit; one server process for all sessions), ${concurrency}`, referenceStdio));
    rows.push(line(`B. via Mandate, server --stateless (one process for all sessions; mTLS, gate, durable audit), ${concurrency}`, mandateShared, referenceStdio));
    rows.push(line(`B. via Mandate, one server process per session (the default), ${concurrency}`, mandateStdio, referenceStdio));

  }

  // C. Idle sessions against the HTTP server: the proxy's own memory per session, read in the plane's process.
  type Memory = { bytes: number; sessions: number; measuredWithGc: boolean };
  const before = await ask<Memory>(plane.child, "memory");
  const { default: https } = await import("node:https");
  const agent = new https.Agent({ keepAlive: true, maxSockets: 16, ...tls });
  const sessions = 1000;
  const init = JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "idle", version: "1" } } });
  const openOne = () =>
    new Promise<void>((resolve, reject) => {
      const req = https.request(`${plane.url}/mcp/http`, { method: "POST", agent, headers: { "content-type": "application/json", accept: "application/json, text/event-stream" } }, (res) => {
        res.resume();
        res.on("end", () => (res.statusCode === 200 ? resolve() : reject(new Error(`HTTP ${res.statusCode}`))));
      });
      req.on("error", reject);
      req.end(init);
    });
  for (let i = 0; i < sessions; i += 16) await Promise.all(Array.from({ length: Math.min(16, sessions - i) }, openOne));
  const after = await ask<Memory>(plane.child, "memory");
  const opened = after.sessions - before.sessions;
  const perSession = (after.bytes - before.bytes) / opened;
  agent.destroy();
  results.idleSession = { sessions: opened, bytesPerSession: Math.round(perSession), measuredWithGc: after.measuredWithGc };
  rows.push("", `C. memory per idle 2025-era session (HTTP upstream, ${opened} sessions${after.measuredWithGc ? "" : ", without --expose-gc"}): ${(perSession / 1024).toFixed(1)} KiB (heap + external)`);
  // D. One client, every target in turns (see mcp-interleaved-load.ts): the 1-client comparison
  // least moved by a shared machine's slow spells, which the sequential rows above each catch or miss.
  const interleaved = await loadInterleaved([
    { name: "direct to the Streamable HTTP server", url: upstream },
    { name: "bare Node HTTPS relay", url: relay.url, tls: relayTls },
    { name: "bare relay making one record durable first", url: durableRelay.url, tls: durableRelayTls },
    { name: "through Mandate (mTLS, gate, durable audit)", url: `${plane.url}/mcp/http`, tls },
    { name: "through Mandate with a delegation token", url: `${plane.url}/mcp/http`, tls, headers: plane.delegation },
    ...(fast ? [{ name: "through Mandate, data directory on tmpfs", url: `${fast.url}/mcp/http`, tls: fast.tls }] : []),
    { name: "stdio server via mcp-proxy", url: reference },
    { name: "stdio server via Mandate, --stateless", url: `${plane.url}/mcp/stdio-shared`, tls },
  ]);
  results.interleaved = interleaved;
  const direct = interleaved.find((r) => r.name === "direct to the Streamable HTTP server")!;
  const referenceStdio = interleaved.find((r) => r.name === "stdio server via mcp-proxy")!;
  const baseOf = (r: InterleavedResult) => (r.name.startsWith("stdio server via Mandate") ? referenceStdio : direct);
  rows.push(
    "",
    `D. one client, the targets in turns (${interleavedRounds} rounds of ${interleavedSliceMs} ms slices each, order rotated every round); added against direct, the stdio row against mcp-proxy`,
    "",
    "| target | calls/s | p50 ms | p99 ms | added p50 / p99 ms | throughput ratio | errors |",
    "|---|---:|---:|---:|---:|---:|---:|",
    ...interleaved.map((r) => {
      const base = r === direct || r === referenceStdio ? undefined : baseOf(r);
      return `| ${r.name} | ${r.perSecond.toFixed(0)} | ${f(r.p50)} | ${f(r.p99)} | ${base ? `${f(minus(r.p50, base.p50))} / ${f(minus(r.p99, base.p99))}` : ""} | ${base ? (r.perSecond / base.perSecond).toFixed(2) : ""} | ${r.failed} |`;
    }),
  );
  for (const r of interleaved) if (r.failed) process.stderr.write(`errors (${r.name}): ${r.firstError}\n`);

  await relay.close();
  await durableRelay.close();
  await ask(plane.child, "close");
  if (fast) await ask(fast.child, "close");
  if (shmDir) await rm(shmDir, { recursive: true, force: true });
} finally {
  for (const child of children) child.kill("SIGTERM");
  await rm(dataDir, { recursive: true, force: true });
}
console.log(rows.join("\n"));
if (process.env.BENCH_OUT) await writeFile(process.env.BENCH_OUT, JSON.stringify(results, null, 2));
process.exit(0);
