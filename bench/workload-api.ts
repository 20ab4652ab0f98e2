import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { loadWorkloadApi } from "../src/agent/workload-api/index.js";
import { childReady } from "./child-ready.js";

/**
 * The daemon's Workload API, measured the way workloads use it: the control plane and the
 * daemon each run as their own `mandate` process, and this process is the client, on the
 * daemon's unix socket.
 *   npm run bench:workload          (BENCH_SECONDS=10, BENCH_CONCURRENCY=32, BENCH_STREAMS=1000)
 * Rows, all in one run:
 *   baseline A: a unary call the server answers before attestation (no security header): gRPC over the socket
 *   baseline B: FetchJWTSVID with an empty audience: gRPC + peer credentials + /proc attestation
 *   FetchJWTSVID, one audience (the daemon's cache answers after the first mint)
 *   FetchJWTSVID, a new audience each call (every call minted by the control plane over kept-alive mTLS)
 *   the daemon's RSS idle, and with BENCH_STREAMS open FetchX509SVID streams (target < 150 MB)
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 1000);
const BIN = fileURLToPath(new URL("../../bin/mandate.js", import.meta.url));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

function run(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.once("exit", (code) => (code === 0 ? resolve(out) : reject(new Error(`mandate ${args[0]} exited ${code}: ${err}`))));
  });
}

/** Starts a long-running `mandate` process and resolves once its stderr/stdout says `ready`. */
async function startProcess(args: string[], ready: RegExp): Promise<ChildProcess> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  await childReady(child, ready, `mandate ${args[0]}`);
  return child;
}

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

/** A bounded closed loop: CONCURRENCY calls in flight for SECONDS, counting completions. */
async function closedLoop(call: (i: number) => Promise<unknown>): Promise<{ perSecond: number; failed: number; p50: number; p99: number }> {
  const deadline = Date.now() + SECONDS * 1000;
  const latencies: number[] = [];
  let failed = 0;
  let n = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < deadline) {
        const start = performance.now();
        try {
          await call(n++);
          latencies.push(performance.now() - start);
        } catch {
          failed++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { perSecond: latencies.length / elapsed, failed, p50: latencies[Math.floor(latencies.length / 2)] ?? 0, p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0 };
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "mandate-bench-wl-"));
  const dataDir = join(work, "cp");
  const creds = join(work, "agent");
  const socket = join(work, "agent.sock");
  const port = await freePort();
  const children: ChildProcess[] = [];
  try {
    children.push(await startProcess(["start", "--data-dir", dataDir, "--listen", `127.0.0.1:${port}`, "--svid-ttl", "1h"], /listening on/));
    const added = JSON.parse(await run(["agents", "add", "bench", "--data-dir", dataDir, "--selector", `unix:uid:${process.getuid!()}`, "--format", "json"])) as { token: string };
    const daemon = await startProcess(["daemon", "--auth-server", `https://127.0.0.1:${port}`, "--join-token", added.token, "--out", creds, "--socket", socket], /Workload API serves/);
    children.push(daemon);

    const { client: WorkloadClient } = loadWorkloadApi();
    const client = new WorkloadClient(`unix://${socket}`, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
    const header = new grpc.Metadata();
    header.set("workload.spiffe.io", "true");
    const unary = (method: string, request: object, metadata = header) =>
      new Promise<any>((resolve, reject) => client[method](request, metadata, (error: grpc.ServiceError | null, response: unknown) => (error ? reject(error) : resolve(response))));
    const expectCode = (code: grpc.status) => (error: grpc.ServiceError) => {
      if (error.code !== code) throw error;
    };

    const idleRss = await rssMb(daemon.pid!);
    const clients = Array.from({ length: 10 }, () => new WorkloadClient(`unix://${socket}`, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }) as grpc.Client & Record<string, any>);
    let firsts = 0;
    const calls = Array.from({ length: STREAMS }, (_, i) => {
      const call = clients[i % clients.length]!.FetchX509SVID({}, header);
      let counted = false;
      call.on("data", () => {
        if (!counted) firsts++;
        counted = true;
      });
      call.on("error", () => undefined);
      return call;
    });
    const deadline = Date.now() + 120_000;
    while (firsts < STREAMS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 1000));
    const streamsRss = await rssMb(daemon.pid!);
    for (const call of calls) call.cancel();
    for (const c of clients) c.close();

    // Streams closed, the same daemon then serves the round-trip rows.
    const noHeader = await closedLoop(() => unary("FetchJWTSVID", { audience: ["a"] }, new grpc.Metadata()).then(() => Promise.reject(new Error("accepted without header")), expectCode(grpc.status.INVALID_ARGUMENT)));
    const attestOnly = await closedLoop(() => unary("FetchJWTSVID", { audience: [] }).then(() => Promise.reject(new Error("accepted empty audience")), expectCode(grpc.status.INVALID_ARGUMENT)));
    const cached = await closedLoop(() => unary("FetchJWTSVID", { audience: ["bench-db"] }));
    const minted = await closedLoop((i) => unary("FetchJWTSVID", { audience: [`bench-${i}`] }));

    const loadedRss = await rssMb(daemon.pid!);
    client.close();

    const rows = [
      ["baseline A: unary refused before attestation (gRPC on the socket)", noHeader],
      ["baseline B: FetchJWTSVID, empty audience (gRPC + SO_PEERCRED + /proc attestation)", attestOnly],
      ["FetchJWTSVID, one audience (cached in the daemon after the first mint)", cached],
      ["FetchJWTSVID, new audience per call (minted by the control plane)", minted],
    ] as const;
    console.log(`\nWorkload API on a unix socket, ${CONCURRENCY} calls in flight, ${SECONDS} s per row`);
    console.log("| measurement | per second | p50 ms | p99 ms | ratio to baseline A | failed |");
    console.log("|---|---:|---:|---:|---:|---:|");
    for (const [name, r] of rows) {
      console.log(`| ${name} | ${Math.round(r.perSecond).toLocaleString("en")} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${(r.perSecond / noHeader.perSecond).toFixed(2)} | ${r.failed} |`);
    }
    console.log(
      `\n| daemon RSS | MB |\n|---|---:|\n| joined, idle | ${idleRss.toFixed(1)} |\n| with ${firsts.toLocaleString("en")} of ${STREAMS.toLocaleString("en")} FetchX509SVID streams open (10 connections) | ${streamsRss.toFixed(1)} (target < 150) |\n| after the round-trip rows | ${loadedRss.toFixed(1)} |`,
    );
    if (process.env.BENCH_OUT) {
      await writeFile(process.env.BENCH_OUT, JSON.stringify({ rows: Object.fromEntries(rows.map(([n, r]) => [n, r])), idleRss, streamsRss, loadedRss, streams: firsts }, null, 2));
    }
  } finally {
    for (const child of children.reverse()) {
      child.kill("SIGTERM");
      await new Promise((r) => (child.exitCode === null ? child.once("exit", r) : r(undefined)));
    }
    await rm(work, { recursive: true, force: true });
  }
}

await main();
