import { type ChildProcess, fork, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { childReady } from "./child-ready.js";
import { startHttpsRelay } from "./https-relay.js";
import type { InterleavedSpec, LlmLoadResult, LlmLoadSpec } from "./llm-load.js";

/**
 * LLM proxy overhead: the same requests to the fake provider directly, through Mandate
 * (mTLS with the agent's SVID, the real access gate over applied roles — and in one
 * phase a delegation token verified and its grant checked — rate limits, a budget, durable audit record
 * before forwarding, usage/transcript/completion records after), and through the Portkey
 * gateway run locally from npm — each in its own process, in one run, at 1 and 100
 * concurrent clients. Non-streaming: p50/p99 to the last byte; streaming: time to first byte.
 * Two floors for reference, in this process: a bare Node HTTPS relay (mTLS, nothing parsed)
 * and the same relay making one record durable before each forward (bench/https-relay.ts).
 * Last, one client again with every target taken in turns in short slices (BENCH_LLM_ROUNDS).
 *   npm run bench:llm      (BENCH_SECONDS=10 for longer phases; BENCH_OUT=file.json)
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP_MS = 1500;
const FAKE_KEY = "sk-bench-0123456789abcdef";
const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

/** Starts a child and waits for the first JSON line it prints (or for `ready` in its output). */
function startChild(child: ChildProcess, ready?: RegExp): Promise<Record<string, string>> {
  return childReady(child, ready ?? "json", "a benchmark child") as Promise<Record<string, string>>;
}

function load(spec: LlmLoadSpec): Promise<LlmLoadResult> {
  const child = fork(here("./llm-load.js"), [], { stdio: "inherit" });
  child.send(spec);
  return new Promise((resolve, reject) => {
    child.once("message", (m) => resolve(m as LlmLoadResult));
    child.once("error", reject);
  });
}

const children: ChildProcess[] = [];
const stopAll = () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
};
process.on("exit", stopAll);

const fake = fork(here("./llm-fake.js"), [], { stdio: ["ignore", "pipe", "pipe", "ipc"], env: { ...process.env, FAKE_KEY } });
children.push(fake);
const { url: fakeUrl } = await startChild(fake);

const mandates: Record<string, { url: string; ca: string; cert: string; key: string; delegation: string }> = {};
const mandateChildren: Record<string, ChildProcess> = {};
for (const mode of ["durable", "concurrent"] as const) {
  // BENCH_PROFILE=DIR writes a CPU profile of each Mandate process there (on exit).
  const execArgv = process.env.BENCH_PROFILE ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROFILE}`, `--cpu-prof-name=mandate-${mode}.cpuprofile`] : [];
  const child = fork(here("./llm-mandate.js"), [], { execArgv, stdio: ["ignore", "pipe", "pipe", "ipc"], env: { ...process.env, FAKE_URL: fakeUrl!, FAKE_KEY, AUDIT_MODE: mode } });
  children.push(child);
  mandateChildren[mode] = child;
  mandates[mode] = (await startChild(child)) as { url: string; ca: string; cert: string; key: string; delegation: string };
}

const portkeyPort = await freePort();
const portkeyScript = fileURLToPath(new URL("../../node_modules/@portkey-ai/gateway/build/start-server.js", import.meta.url));
// The shim makes the gateway's streaming work on the @hono/node-server npm gives it, and keeps it on loopback (see the file).
const portkeyShim = new URL("./llm-portkey-shim.js", import.meta.url).href;
const portkey = spawn(process.execPath, ["--import", portkeyShim, portkeyScript, `--port=${portkeyPort}`, "--headless"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NODE_ENV: "production" } });
children.push(portkey);
await startChild(portkey, /Ready for connections/);

// The relays verify the agent's SVID like Mandate does, so the load presents the same certificate.
const relayDir = await mkdtemp(join(tmpdir(), "mandate-bench-llm-relay-"));
const relay = await startHttpsRelay(`${fakeUrl}/v1/chat/completions`, mandates.durable!.ca);
const durableRelay = await startHttpsRelay(`${fakeUrl}/v1/chat/completions`, mandates.durable!.ca, { durableRecordsIn: relayDir });

const chat = (stream: boolean) => JSON.stringify({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "What is the status of the checkout deploy?" }], max_tokens: 64, ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}) });
const targets = {
  direct: { url: `${fakeUrl}/v1/chat/completions`, headers: { authorization: `Bearer ${FAKE_KEY}` } },
  mandate: { url: `${mandates.durable!.url}/llm/v1/chat/completions`, headers: {}, tls: { ca: mandates.durable!.ca, cert: mandates.durable!.cert, key: mandates.durable!.key } },
  "mandate (delegation token)": { url: `${mandates.durable!.url}/llm/v1/chat/completions`, headers: { "x-mandate-delegation": mandates.durable!.delegation }, tls: { ca: mandates.durable!.ca, cert: mandates.durable!.cert, key: mandates.durable!.key } },
  "mandate (audit concurrent)": { url: `${mandates.concurrent!.url}/llm/v1/chat/completions`, headers: {}, tls: { ca: mandates.concurrent!.ca, cert: mandates.concurrent!.cert, key: mandates.concurrent!.key } },
  portkey: { url: `http://127.0.0.1:${portkeyPort}/v1/chat/completions`, headers: { authorization: `Bearer ${FAKE_KEY}`, "x-portkey-provider": "openai", "x-portkey-custom-host": `${fakeUrl}/v1` } },
  "bare relay": { url: relay.url, headers: { authorization: `Bearer ${FAKE_KEY}` }, tls: { ca: relay.ca, cert: mandates.durable!.cert, key: mandates.durable!.key } },
  "bare relay + durable record": { url: durableRelay.url, headers: { authorization: `Bearer ${FAKE_KEY}` }, tls: { ca: durableRelay.ca, cert: mandates.durable!.cert, key: mandates.durable!.key } },
} as const;

/** CPU time (user + system, µs) a Mandate process has used so far, asked for over IPC. */
function mandateCpu(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once("message", (m) => {
      const { cpu } = m as { cpu: NodeJS.CpuUsage };
      resolve(cpu.user + cpu.system);
    });
    child.send("cpu");
  });
}

/** The same for the gateway, which is not ours to instrument: utime + stime from /proc, in µs. */
async function procCpu(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticksPerSecond = 100;
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / ticksPerSecond;
}

const cpuOf: Record<string, () => Promise<number>> = {
  mandate: () => mandateCpu(mandateChildren.durable!),
  "mandate (delegation token)": () => mandateCpu(mandateChildren.durable!),
  "mandate (audit concurrent)": () => mandateCpu(mandateChildren.concurrent!),
  portkey: () => procCpu(portkey.pid!),
  // The relays run in this process; the load generator is a child of its own.
  "bare relay": async () => (({ user, system }) => user + system)(process.cpuUsage()),
  "bare relay + durable record": async () => (({ user, system }) => user + system)(process.cpuUsage()),
};

/** Percentiles of a phase with no successful request arrive as null (NaN does not survive IPC). */
const ms = (v: number | null) => (v === null || Number.isNaN(v) ? "   n/a" : v.toFixed(3));

interface Row {
  target: string;
  concurrency: number;
  mode: "json" | "stream";
  result: LlmLoadResult;
  /** CPU µs the proxy's process spent per answered request over the phase (warm-up included). */
  cpuPerRequest: number | null;
}
const rows: Row[] = [];
for (const concurrency of [1, 100]) {
  for (const mode of ["json", "stream"] as const) {
    for (const [name, t] of Object.entries(targets)) {
      const cpuBefore = await cpuOf[name]?.();
      const result = await load({ url: t.url, headers: t.headers, body: chat(mode === "stream"), expectSse: mode === "stream", concurrency, durationMs: SECONDS * 1000, warmupMs: WARMUP_MS, ...("tls" in t ? { tls: t.tls } : {}) });
      const cpuAfter = await cpuOf[name]?.();
      const cpuPerRequest = cpuBefore === undefined || cpuAfter === undefined || result.answered === 0 ? null : (cpuAfter - cpuBefore) / result.answered;
      rows.push({ target: name, concurrency, mode, result, cpuPerRequest });
      const r = result;
      const cpu = cpuPerRequest === null ? "" : `  cpu ${cpuPerRequest.toFixed(0)} µs/req`;
      console.log(
        `${mode.padEnd(6)} c=${String(concurrency).padEnd(3)} ${name.padEnd(27)} ${r.perSecond.toFixed(0).padStart(6)}/s  p50 ${ms(r.p50)} ms  p99 ${ms(r.p99)} ms  ttfb p50 ${ms(r.ttfbP50)} ms${cpu}  (${r.completed} ok, ${r.failed} failed${r.firstError ? `: ${r.firstError}` : ""})`,
      );
    }
  }
}

console.log("\noverhead over calling the provider directly (ms; lower is better)");
console.log("mode    c    target                       p50 added  p99 added  ttfb p50 added  cpu µs/req");
for (const row of rows.filter((r) => r.target !== "direct")) {
  const base = rows.find((r) => r.target === "direct" && r.concurrency === row.concurrency && r.mode === row.mode)!.result;
  const r = row.result;
  const added = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
  console.log(`${row.mode.padEnd(7)} ${String(row.concurrency).padEnd(4)} ${row.target.padEnd(28)} ${ms(added(r.p50, base.p50)).padStart(9)}  ${ms(added(r.p99, base.p99)).padStart(9)}  ${ms(added(r.ttfbP50, base.ttfbP50)).padStart(13)}  ${(row.cpuPerRequest === null ? "n/a" : row.cpuPerRequest.toFixed(0)).padStart(10)}`);
}
// One client again, every target in turns (llm-load.ts runInterleaved): the 1-client comparison
// least moved by a shared machine's slow spells, which each sequential phase above catches or misses.
const ROUNDS = Number(process.env.BENCH_LLM_ROUNDS ?? 10);
const SLICE_MS = 500;
const interleaved: Record<string, (LlmLoadResult & { name: string })[]> = {};
for (const mode of ["json", "stream"] as const) {
  const spec: InterleavedSpec = {
    rounds: ROUNDS,
    sliceMs: SLICE_MS,
    warmupMs: 1000,
    targets: Object.entries(targets).map(([name, t]) => ({ name, url: t.url, headers: t.headers, body: chat(mode === "stream"), expectSse: mode === "stream", ...("tls" in t ? { tls: t.tls } : {}) })),
  };
  const child = fork(here("./llm-load.js"), [], { stdio: "inherit" });
  child.send(spec);
  interleaved[mode] = await new Promise((resolve) => child.once("message", (m) => resolve(m as (LlmLoadResult & { name: string })[])));
}
console.log(`\none client, the targets in turns (${ROUNDS} rounds of ${SLICE_MS} ms slices, order rotated every round); added over the provider directly`);
console.log("mode    target                       p50 added  p99 added  ttfb p50 added  req/s  failed");
for (const [mode, results] of Object.entries(interleaved)) {
  const base = results.find((r) => r.name === "direct")!;
  for (const r of results.filter((x) => x.name !== "direct")) {
    const added = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
    console.log(`${mode.padEnd(7)} ${r.name.padEnd(28)} ${ms(added(r.p50, base.p50)).padStart(9)}  ${ms(added(r.p99, base.p99)).padStart(9)}  ${ms(added(r.ttfbP50, base.ttfbP50)).padStart(13)}  ${r.perSecond.toFixed(0).padStart(5)}  ${r.failed}${r.firstError ? ` (${r.firstError})` : ""}`);
  }
}

if (process.env.BENCH_OUT) await writeFile(process.env.BENCH_OUT, JSON.stringify({ rows, interleaved }, null, 2));
await relay.close();
await durableRelay.close();
await rm(relayDir, { recursive: true, force: true });
stopAll();
process.exit(0);
