import { createPrivateKey } from "node:crypto";
import { Agent, request } from "node:https";
import { createSecureContext } from "node:tls";
import { parentPort, workerData } from "node:worker_threads";
import { generateKeyAndCsr } from "../src/agent/csr.js";
import { csrDigest } from "../src/identity/renewal-proof.js";
import { pemDecodeAll } from "../src/identity/x509-util.js";
import { type FreshCsr, type ProofIdentity, RenewalConnection, bodyPrefix, claimsPrefix, renewalBody, renewedIdentity } from "./renewal-connection.js";

/**
 * A bounded closed-loop load generator: `concurrency` requests in flight over
 * kept-alive mTLS connections, for `durationMs`, then it stops by itself.
 */
interface LoadSpec {
  url: string;
  ca: string;
  cert: string;
  key: string;
  bodies: string[];
  concurrency: number;
  durationMs: number;
  warmupMs: number;
  /**
   * Renewal mode: each slot is one agent instance that renews with its current SVID over
   * a new mTLS connection, with a fresh key (`keys[i]` belongs to `bodies[i]`), and uses
   * the returned SVID next time, as `mandate daemon` does.
   */
  renewal?: { identities: { cert: string; key: string }[]; keys: string[] };
  /** Baseline mode: a new mTLS connection per request with one cached TLS context, GET only. */
  freshConnections?: boolean;
  /**
   * Proof-renewal mode, as `mandate daemon` renews: each slot is one agent instance that
   * renews with a proof made by its current SVID's key, over its own kept-alive TLS
   * connection without a client certificate (`renewal-connection.ts`: pre-built request
   * parts, no pipelining, only status, content-length and the renewed SVID's three fields
   * read back), each time with a key and CSR never used before (made before the clock
   * starts: `freshKeys` of them), and uses the returned SVID and generation next time.
   */
  proofRenewal?: { identities: { cert: string; key: string; generation: number; instance: string; spiffeId: string; serial: string }[]; audience: string; freshKeys: number };
}

// Runs as a child process (the benchmark's default: client and server do not share a heap or an event loop) or as a worker thread.
const spec = (parentPort ? workerData : await new Promise((resolve) => process.once("message", resolve))) as LoadSpec;
const agent = new Agent({ keepAlive: true, maxSockets: spec.concurrency, ca: spec.ca, ...(spec.cert ? { cert: spec.cert, key: spec.key } : {}) });
const proofIdentities: ProofIdentity[] = (spec.proofRenewal?.identities ?? []).map((i) => ({
  privateKey: createPrivateKey(i.key),
  leafBase64: pemDecodeAll(i.cert)[0]!.toString("base64"),
  generation: i.generation,
  serial: i.serial,
  claimsPrefix: claimsPrefix({ aud: spec.proofRenewal!.audience, sub: i.spiffeId, instance: i.instance }),
}));
const target = new URL(spec.url);
const connections = proofIdentities.map(() => new RenewalConnection({ host: target.hostname, port: Number(target.port), path: target.pathname, ca: spec.ca }));
const freshKeys: FreshCsr[] = await Promise.all(
  Array.from({ length: spec.proofRenewal?.freshKeys ?? 0 }, async () => {
    const made = await generateKeyAndCsr();
    return { privateKey: made.privateKey, bodyPrefix: bodyPrefix(made.csrPem), digest: csrDigest(made.csrDer) };
  }),
);
let nextFreshKey = 0;
let reusedKeys = 0;
const identities = spec.renewal?.identities.map((i) => ({ ...i })) ?? [];
const freshContext = spec.freshConnections ? createSecureContext({ ca: spec.ca, cert: spec.cert, key: spec.key }) : undefined;
let completed = 0;
let failed = 0;
let firstError = "";
const latencies: number[] = [];
let measuring = false;
const started = Date.now();
const deadline = started + spec.warmupMs + spec.durationMs;

/** Counts a finished request once the warm-up is over. */
function record(status: number | undefined, t0: number, body: () => string): void {
  if (!measuring) return;
  if (status === 200) {
    completed++;
    latencies.push(performance.now() - t0);
  } else {
    failed++;
    firstError ||= `${status} ${body().slice(0, 200)}`;
  }
}

async function oneProofRenewal(slot: number): Promise<void> {
  const identity = proofIdentities[slot]!;
  if (nextFreshKey >= freshKeys.length) reusedKeys++;
  const fresh = freshKeys[nextFreshKey++ % freshKeys.length]!;
  const t0 = performance.now();
  try {
    const { status, body } = await connections[slot]!.post(renewalBody(identity, fresh, Math.floor(Date.now() / 1000)));
    const renewed = status === 200 ? renewedIdentity(body) : undefined;
    if (renewed) Object.assign(identity, renewed, { privateKey: fresh.privateKey });
    record(renewed ? status : status === 200 ? 0 : status, t0, () => body.toString());
  } catch (error) {
    if (measuring) failed++;
    firstError ||= (error as Error).message;
  }
}

function one(i: number, slot: number): Promise<void> {
  if (spec.proofRenewal) return oneProofRenewal(slot);
  return new Promise((resolve) => {
    const bodyIndex = i % spec.bodies.length;
    const body = spec.bodies[bodyIndex]!;
    const t0 = performance.now();
    const identity = identities[slot];
    const tls = identity ? { agent: false as const, ca: spec.ca, cert: identity.cert, key: identity.key } : freshContext ? { agent: false as const, secureContext: freshContext } : { agent };
    const method = freshContext ? "GET" : "POST";
    const headers = freshContext ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(body) };
    const req = request(spec.url, { method, ...tls, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        if (identity && res.statusCode === 200) {
          identity.cert = (JSON.parse(Buffer.concat(chunks).toString()) as { svidPem: string }).svidPem;
          identity.key = spec.renewal!.keys[bodyIndex]!;
        }
        record(res.statusCode, t0, () => Buffer.concat(chunks).toString());
        resolve();
      });
    });
    req.on("error", (error) => {
      if (measuring) failed++;
      firstError ||= error.message;
      resolve();
    });
    req.end(freshContext ? undefined : body);
  });
}

async function loop(worker: number): Promise<void> {
  let i = worker;
  while (Date.now() < deadline) {
    await one(i, worker);
    i += spec.concurrency;
  }
}

let measuredCpu0: NodeJS.CpuUsage | undefined;
setTimeout(() => {
  measuring = true;
  measuredCpu0 = process.cpuUsage();
}, spec.warmupMs);
const t0 = Date.now();
const cpu0 = process.cpuUsage();
await Promise.all(Array.from({ length: spec.concurrency }, (_, w) => loop(w)));
const measuredCpu = process.cpuUsage(measuredCpu0);
agent.destroy();
for (const connection of connections) connection.close();
latencies.sort((a, b) => a - b);
const measuredSeconds = (Date.now() - t0 - spec.warmupMs) / 1000;
const report = (message: unknown) => (parentPort ? parentPort.postMessage(message) : process.send!(message, () => process.exit(0)));
report({
  completed,
  failed,
  firstError,
  reusedKeys,
  cpuMs: (({ user, system }) => (user + system) / 1000)(process.cpuUsage(cpu0)),
  // Over the measured window only, per finished request: this process's own cost per renewal.
  cpuUsPerRequest: (measuredCpu.user + measuredCpu.system) / Math.max(1, completed + failed),
  perSecond: completed / measuredSeconds,
  p50: latencies[Math.floor(latencies.length * 0.5)] ?? 0,
  p99: latencies[Math.floor(latencies.length * 0.99)] ?? 0,
});
