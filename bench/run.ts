import "../src/cli/threadpool.js";
import "reflect-metadata";
import { webcrypto } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { fork } from "node:child_process";
import * as x509lib from "@peculiar/x509";
import { createPrivateKey } from "node:crypto";
import { generateKeyAndCsr, joinWithToken, readCredentials } from "../src/agent/index.js";
import { csrDigest, signRenewalProof } from "../src/identity/renewal-proof.js";
import { pemDecodeAll } from "../src/identity/x509-util.js";
import { readIdentityFile } from "../src/client/identity-file.js";
import { MandateClient } from "../src/client/http-client.js";
import { parseCsr, verifyCsr } from "../src/identity/index.js";
import { EC_P256, randomSerial, x509 } from "../src/identity/x509-util.js";
import { startControlPlane } from "../src/server/index.js";
import { issueControlPlaneCertificate } from "../src/server/server-identity.js";
import { SignatureVerifierPool } from "../src/identity/signature-pool.js";
import { startBareRenewalServer } from "./bare-renewal-server.js";
import { measureOpensslCeiling } from "./openssl-ceiling.js";

/**
 * Issuance and JWT-SVID minting speed, each reported as a ratio to the machine's own
 * ECDSA P-256 ceiling measured by openssl in the same run, with the certificate
 * library's own leaf-building rate as the baseline the DER template replaces.
 *   npm run bench            (BENCH_SECONDS=10 for longer runs)
 */
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 32);

/** The load generator runs in its own process, as clients would, sharing only the machine. */
function runLoad(spec: object): Promise<{ completed: number; failed: number; firstError: string; perSecond: number; p50: number; p99: number; reusedKeys?: number; cpuMs?: number; cpuUsPerRequest?: number }> {
  // BENCH_LOAD_PROF=DIR writes a V8 CPU profile of each load-generator process there.
  const execArgv = process.env.BENCH_LOAD_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_LOAD_PROF}`] : [];
  const child = fork(fileURLToPath(new URL("./load-worker.js", import.meta.url)), [], { stdio: "inherit", execArgv });
  child.send(spec);
  return new Promise((resolve, reject) => {
    child.once("message", resolve as (m: unknown) => void);
    child.once("error", reject);
    child.once("exit", (code) => code !== 0 && reject(new Error(`load generator exited with ${code}`)));
  });
}

/** CPU ticks per thread of this process (utime + stime from /proc), to see which thread the time goes to. */
async function threadTicks(): Promise<Map<string, { name: string; ticks: number }>> {
  const threads = new Map<string, { name: string; ticks: number }>();
  const tids = await readdir("/proc/self/task").catch(() => [] as string[]);
  for (const tid of tids) {
    try {
      const stat = await readFile(`/proc/self/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const name = (await readFile(`/proc/self/task/${tid}/comm`, "utf8")).trim();
      threads.set(tid, { name: Number(tid) === process.pid ? "main (event loop)" : name, ticks: Number(fields[11]) + Number(fields[12]) });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return threads;
}

function threadCpuSince(before: Map<string, { name: string; ticks: number }>, after: Map<string, { name: string; ticks: number }>, seconds: number): { thread: string; percentOfCore: number }[] {
  const rows = [...after].map(([tid, t]) => ({ thread: `${t.name} [${tid}]`, percentOfCore: ((t.ticks - (before.get(tid)?.ticks ?? 0)) / 100 / seconds) * 100 }));
  return rows.filter((r) => r.percentOfCore >= 1).sort((a, b) => b.percentOfCore - a.percentOfCore);
}

async function libraryLeafRate(seconds: number): Promise<number> {
  const issuerKeys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const leafKeys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const deadline = Date.now() + seconds * 1000;
  let n = 0;
  const t0 = Date.now();
  while (Date.now() < deadline) {
    await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial().toString("hex"),
      subject: "",
      issuer: "CN=bench",
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 3600_000),
      signingAlgorithm: EC_P256,
      publicKey: leafKeys.publicKey,
      signingKey: issuerKeys.privateKey,
      extensions: [
        new x509lib.BasicConstraintsExtension(false, undefined, true),
        new x509lib.KeyUsagesExtension(x509lib.KeyUsageFlags.digitalSignature, true),
        new x509lib.SubjectAlternativeNameExtension([{ type: "url", value: "spiffe://mandate.local/agent/bench" }], true),
      ],
    });
    n++;
  }
  return n / ((Date.now() - t0) / 1000);
}

async function mintRate(mint: () => Promise<unknown>, seconds: number, concurrency: number): Promise<number> {
  const deadline = Date.now() + seconds * 1000;
  let n = 0;
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < deadline) {
        await mint();
        n++;
      }
    }),
  );
  return n / ((Date.now() - t0) / 1000);
}

const dataDir = await mkdtemp(join(tmpdir(), "mandate-bench-"));
const credsDir = join(dataDir, "creds");
console.log(`Measuring the openssl ECDSA P-256 ceiling (${SECONDS}s)…`);
const ceiling = await measureOpensslCeiling(SECONDS);
console.log(`Starting a control plane on SQLite in ${dataDir}…`);
const plane = await startControlPlane({ dataDir, listen: "127.0.0.1:0", logLevel: "silent" });
try {
  const admin = await readIdentityFile(plane.adminIdentityPath);
  const adminClient = new MandateClient(plane.url, { caPem: admin.bundlePem, certPem: admin.certPem, keyPem: admin.keyPem });
  const { token } = await adminClient.request<{ token: string }>("POST", "/v1/agents", { name: "bench", roles: [] });
  adminClient.close();
  await joinWithToken(credsDir, plane.url, token);
  const creds = (await readCredentials(credsDir))!;
  const pairs = await Promise.all(Array.from({ length: 256 }, () => generateKeyAndCsr()));
  const bodies = pairs.map((p) => JSON.stringify({ csr: p.csrPem }));
  // One joined instance per concurrent slot: each renews with its own current SVID.
  const instances = [];
  for (let i = 0; i < CONCURRENCY; i++) {
    const dir = join(dataDir, `instance-${i}`);
    const tokenClient = new MandateClient(plane.url, { caPem: admin.bundlePem, certPem: admin.certPem, keyPem: admin.keyPem });
    const { token: t } = await tokenClient.request<{ token: string }>("POST", "/v1/agents/bench/tokens", {});
    tokenClient.close();
    await joinWithToken(dir, plane.url, t);
    const c = (await readCredentials(dir))!;
    instances.push({ cert: c.svidPem, key: c.keyPem });
  }

  // Another set of instances renews by proof of possession, as `mandate daemon` does by default.
  const joinProofInstances = async (prefix: string) => {
    const joined = [];
    for (let i = 0; i < CONCURRENCY; i++) {
      const dir = join(dataDir, `${prefix}-${i}`);
      const tokenClient = new MandateClient(plane.url, { caPem: admin.bundlePem, certPem: admin.certPem, keyPem: admin.keyPem });
      const { token: t } = await tokenClient.request<{ token: string }>("POST", "/v1/agents/bench/tokens", {});
      tokenClient.close();
      await joinWithToken(dir, plane.url, t);
      const c = (await readCredentials(dir))!;
      joined.push({ cert: c.svidPem, key: c.keyPem, generation: c.state.generation!, instance: c.state.instanceId, spiffeId: c.state.spiffeId, serial: c.state.serial.toLowerCase() });
    }
    return joined;
  };
  const proofInstances = await joinProofInstances("proof-instance");
  const audience = `spiffe://${plane.context.authority.trustDomain}/mandate/server`;

  // The same renewals without HTTP, TLS or the load generator: what the proof check and issuance cost by themselves.
  console.log(`  in-process: the same proof renewals without HTTP (the proofs signed here too), ${SECONDS}s…`);
  const inProcess = (await joinProofInstances("in-process-proof")).map((i) => ({ ...i, privateKey: createPrivateKey(i.key), leafDer: pemDecodeAll(i.cert)[0]! }));
  const inProcessKeys = await Promise.all(Array.from({ length: SECONDS * 2500 }, () => generateKeyAndCsr()));
  let nextKey = 0;
  const inProcessCpu0 = process.cpuUsage();
  const inProcessT0 = Date.now();
  // Each identity renews in its own loop: two renewals of one instance at once would be a copied credential.
  const inProcessDeadline = Date.now() + SECONDS * 1000;
  let inProcessDone = 0;
  await Promise.all(
    inProcess.map(async (identity) => {
      while (Date.now() < inProcessDeadline) {
        const fresh = inProcessKeys[nextKey++ % inProcessKeys.length]!;
        const proof = signRenewalProof(identity.privateKey, identity.leafDer, { aud: audience, sub: identity.spiffeId, iat: Math.floor(Date.now() / 1000), instance: identity.instance, generation: identity.generation, serial: identity.serial, csr: csrDigest(fresh.csrDer) });
        const renewed = await plane.context.svids.renewWithProof({ csr: fresh.csrPem, proof });
        identity.leafDer = renewed.svid.certDer;
        identity.privateKey = fresh.privateKey;
        identity.generation = renewed.svid.generation!;
        identity.serial = renewed.svid.serialHex;
        inProcessDone++;
      }
    }),
  );
  const inProcessProofRate = inProcessDone / ((Date.now() - inProcessT0) / 1000);
  const inProcessCpu = process.cpuUsage(inProcessCpu0);
  const inProcessProofCpuUs = (inProcessCpu.user + inProcessCpu.system) / (inProcessProofRate * ((Date.now() - inProcessT0) / 1000));
  console.log(`  in-process proof renewal: ${inProcessProofRate.toFixed(0)}/s = ${(inProcessProofRate / ceiling.issuancePerSecond).toFixed(2)} of ceiling; ${inProcessProofCpuUs.toFixed(0)} µs CPU per renewal (all threads, proof signing included)`);
  /**
   * One proof-renewal row over the API: the load generator renews the proof instances
   * against `url`; CPU per renewal by thread of this process (`/proc/self/task`), and the
   * load generator's own.
   */
  const measureProofRow = async (label: string, url: string) => {
    console.log(`${label}: ${CONCURRENCY} agent instances, one kept-alive TLS connection each, each renewal with a fresh key and CSR and a proof by the current SVID, ${SECONDS}s…`);
    const elu0 = performance.eventLoopUtilization();
    const threads0 = await threadTicks();
    const t0 = Date.now();
    const load = await runLoad({
      url,
      ca: creds.bundlePem,
      cert: "",
      key: "",
      bodies: [""],
      concurrency: CONCURRENCY,
      durationMs: SECONDS * 1000,
      warmupMs: 1000,
      proofRenewal: { identities: proofInstances, audience, freshKeys: Math.ceil((SECONDS + 1) * Number(process.env.BENCH_FRESH_KEYS_PER_SECOND ?? 5000)) },
    });
    // Key generation in the load process happens before its clock starts, so only the last (1 + SECONDS) s are the load.
    const window = Math.min((Date.now() - t0) / 1000, SECONDS + 1);
    const threads1 = await threadTicks();
    const threads = threadCpuSince(threads0, threads1, window);
    // CPU per renewal, the number a quieter machine would not change much: rate in the window × window = renewals done.
    const renewalsInWindow = Math.max(1, load.perSecond * window);
    const ticksSince = (pick: (tid: string) => boolean) => [...threads1].filter(([tid]) => pick(tid)).reduce((sum, [tid, t]) => sum + t.ticks - (threads0.get(tid)?.ticks ?? 0), 0) * 10;
    const cpuPerRenewal = {
      eventLoopUs: (ticksSince((tid) => Number(tid) === process.pid) / renewalsInWindow) * 1000,
      otherThreadsUs: (ticksSince((tid) => Number(tid) !== process.pid) / renewalsInWindow) * 1000,
      loadGeneratorUs: load.cpuUsPerRequest ?? ((load.cpuMs ?? 0) / renewalsInWindow) * 1000,
    };
    const loopBusy = Math.min(1, performance.eventLoopUtilization(elu0).active / (window * 1000));
    console.log(`  server threads (% of one core over the ${window.toFixed(1)} s load): ${threads.map((t) => `${t.thread} ${t.percentOfCore.toFixed(0)}%`).join(", ")}`);
    console.log(`  load generator process: ${(((load.cpuMs ?? 0) / 1000 / (SECONDS + 1)) * 100).toFixed(0)}% of one core; load average ${(await readFile("/proc/loadavg", "utf8")).split(" ").slice(0, 3).join(" ")}`);
    if (load.failed) console.log(`  ${load.failed} failed requests, first: ${load.firstError}`);
    if (load.reusedKeys) console.log(`  ${load.reusedKeys} renewals reused a pre-made key (raise BENCH_FRESH_KEYS_PER_SECOND)`);
    console.log(`  event loop ${(loopBusy * 100).toFixed(0)}% busy; ${load.perSecond.toFixed(0)}/s = ${(load.perSecond / ceiling.issuancePerSecond).toFixed(2)} of ceiling, p50 ${load.p50.toFixed(1)} ms, p99 ${load.p99.toFixed(1)} ms`);
    const serverUs = cpuPerRenewal.eventLoopUs + cpuPerRenewal.otherThreadsUs;
    const cpuTotalUs = serverUs + cpuPerRenewal.loadGeneratorUs;
    console.log(
      `  CPU per renewal: server ${serverUs.toFixed(0)} µs (event loop ${cpuPerRenewal.eventLoopUs.toFixed(0)}, other threads ${cpuPerRenewal.otherThreadsUs.toFixed(0)}), load generator ${cpuPerRenewal.loadGeneratorUs.toFixed(0)} µs: two otherwise idle cores would allow at most ${((2 * 1e6) / cpuTotalUs).toFixed(0)}/s = ${((2 * 1e6) / cpuTotalUs / ceiling.issuancePerSecond).toFixed(2)} of ceiling, the event loop alone ${(1e6 / cpuPerRenewal.eventLoopUs).toFixed(0)}/s`,
    );
    return { load, threads, loopBusy, cpuPerRenewal, serverUs, boundPerSecond: (2 * 1e6) / cpuTotalUs };
  };

  const bareRow = async (crypto: "worker" | "inline" | "none", label: string) => {
    // The same signature worker arrangement as the control plane's (one worker on two cores).
    const pool = new SignatureVerifierPool();
    const authority = plane.context.authority;
    const tlsCert = await issueControlPlaneCertificate(authority, plane.context.store, "server", ["127.0.0.1"], 3600_000, Date.now());
    const bare = await startBareRenewalServer({ keyPem: tlsCert.keyPem, certPem: tlsCert.chainPem, caPem: authority.x509AuthoritiesPem(), signer: authority.x509Signer, pool, bundlePem: authority.x509AuthoritiesPem(), jwtBundle: authority.jwtBundleDocument(), crypto });
    try {
      return await measureProofRow(label, `${bare.url}/v1/svid/x509/proof`);
    } finally {
      await bare.close();
      await pool.close();
    }
  };

  const mandateRow = await measureProofRow("X509-SVID renewal over the API by proof of possession", `${plane.url}/v1/svid/x509/proof`);
  const proofRenewal = mandateRow.load;
  const proofThreads = mandateRow.threads;
  const proofLoopBusy = mandateRow.loopBusy;
  const cpuPerRenewal = mandateRow.cpuPerRenewal;
  // BENCH_REFERENCES=0 leaves out the reference rows (e.g. to profile the control plane's row alone).
  if (process.env.BENCH_ONLY === "proof" && process.env.BENCH_REFERENCES === "0") process.exit(0);
  const bare = await bareRow("worker", "Reference: node's bare HTTPS server doing only a renewal's crypto, on the signature worker as Mandate does (no framework, store or audit)");
  const bareInline = await bareRow("inline", "Reference: the same with the crypto inline on the event loop (JWK key import, proof key cached)");
  const bareFloor = await bareRow("none", "Floor: node's bare HTTPS server answering a canned renewal (TLS + HTTP + load generator only, no server crypto)");
  const proofRows = [
    ["ceiling: 1 verify + 1 sign per issuance (openssl)", ceiling.issuancePerSecond, undefined],
    ["Mandate: POST /v1/svid/x509/proof", proofRenewal.perSecond, mandateRow],
    ["reference: bare node HTTPS + crypto on the worker", bare.load.perSecond, bare],
    ["reference: bare node HTTPS + crypto inline", bareInline.load.perSecond, bareInline],
    ["floor: bare node HTTPS, canned answer, no crypto", bareFloor.load.perSecond, bareFloor],
  ] as const;
  console.log("");
  for (const [name, rate, row] of proofRows) {
    const cpu = row ? `; CPU per renewal: server ${row.serverUs.toFixed(0)} µs, load generator ${row.cpuPerRenewal.loadGeneratorUs.toFixed(0)} µs; CPU bound on 2 cores ${(row.boundPerSecond / ceiling.issuancePerSecond).toFixed(2)}` : "";
    console.log(`${name.padEnd(52)} ${rate.toFixed(0).padStart(7)}/s  ${(rate / ceiling.issuancePerSecond).toFixed(2)} of ceiling${cpu}`);
  }
  if (process.env.BENCH_ONLY === "proof") process.exit(0);

  console.log(`X509-SVID renewal over the API: ${CONCURRENCY} agent instances, each over a new mTLS connection with its current SVID and a fresh key, ${SECONDS}s…`);
  const elu0 = performance.eventLoopUtilization();
  const cpu0 = process.cpuUsage();
  const issuance = await runLoad({
    url: `${plane.url}/v1/svid/x509`,
    ca: creds.bundlePem,
    cert: creds.svidPem,
    key: creds.keyPem,
    bodies,
    concurrency: CONCURRENCY,
    durationMs: SECONDS * 1000,
    warmupMs: 1000,
    renewal: { identities: instances, keys: pairs.map((p) => p.keyPem) },
  });
  const elu = performance.eventLoopUtilization(elu0);
  const cpu = process.cpuUsage(cpu0);
  console.log(`  control-plane event loop ${(elu.utilization * 100).toFixed(0)}% busy; process CPU ${((cpu.user + cpu.system) / 1000 / ((SECONDS + 1) * 1000) * 100).toFixed(0)}% of one core`);
  if (issuance.failed) console.log(`  ${issuance.failed} failed requests, first: ${issuance.firstError}`);

  console.log(`Baseline: new mTLS connections to /healthz (TLS handshake only), ${SECONDS}s…`);
  const handshakes = await runLoad({ url: `${plane.url}/healthz`, ca: creds.bundlePem, cert: creds.svidPem, key: creds.keyPem, bodies: [""], concurrency: CONCURRENCY, durationMs: SECONDS * 1000, warmupMs: 1000, freshConnections: true });

  if (process.env.BENCH_ONLY === "issuance") {
    console.log(`proof renewal ${proofRenewal.perSecond.toFixed(0)}/s = ${(proofRenewal.perSecond / ceiling.issuancePerSecond).toFixed(2)} of ceiling (p50 ${proofRenewal.p50.toFixed(1)} ms, p99 ${proofRenewal.p99.toFixed(1)} ms); mTLS renewal ${issuance.perSecond.toFixed(0)}/s = ${(issuance.perSecond / ceiling.issuancePerSecond).toFixed(2)}; handshakes ${handshakes.perSecond.toFixed(0)}/s`);
    process.exit(0);
  }
  console.log(`JWT-SVID minting in-process, ${SECONDS}s…`);
  const signer = plane.context.authority.jwtSvidSigner;
  const jwtRate = await mintRate(() => signer.mintJwtSvid({ spiffeId: "spiffe://mandate.local/agent/bench", audience: ["bench"], ttlSeconds: 300 }), SECONDS, 64);

  console.log(`X509-SVID issuance in-process (parse + verify CSR, build + sign leaf), ${SECONDS}s…`);
  const csrTexts = pairs.map((p) => p.csrPem);
  const x509Signer = plane.context.authority.x509Signer;
  let k = 0;
  const coreRate = await mintRate(async () => {
    const csr = parseCsr(csrTexts[k++ % csrTexts.length]!);
    await verifyCsr(csr);
    const t = Date.now();
    return x509Signer.builder.buildX509Svid({ spiffeId: "spiffe://mandate.local/agent/bench", spkiDer: csr.spkiDer, keyAlgorithm: csr.keyAlgorithm, serial: randomSerial(), notBefore: new Date(t - 60_000), notAfter: new Date(t + 3600_000) });
  }, SECONDS, 64);
  console.log(`… plus the durable issuance record and audit event, ${SECONDS}s…`);
  const durableRate = await mintRate(async () => {
    const svid = await plane.context.issuer.issue({
      csr: parseCsr(csrTexts[k++ % csrTexts.length]!),
      spiffeId: "spiffe://mandate.local/agent/bench",
      agentName: "bench",
      instanceId: null,
      ttlMs: 3600_000,
      audit: (issued) => ({ type: "identity.renew", code: "OK", actor: { kind: "agent", agent: "bench" }, target: { serial: issued.serialHex }, outcome: { status: "ok" } }),
    });
    return svid.serialHex;
  }, SECONDS, 64);

  console.log(`JWT-SVID over the API, ${SECONDS}s…`);
  const jwtApi = await runLoad({ url: `${plane.url}/v1/svid/jwt`, ca: creds.bundlePem, cert: creds.svidPem, key: creds.keyPem, bodies: [JSON.stringify({ audience: ["bench"] })], concurrency: CONCURRENCY, durationMs: SECONDS * 1000, warmupMs: 1000 });

  console.log(`Baseline: @peculiar/x509 building one leaf at a time, ${Math.min(SECONDS, 3)}s…`);
  const libraryRate = await libraryLeafRate(Math.min(SECONDS, 3));

  const issuanceRatio = proofRenewal.perSecond / ceiling.issuancePerSecond;
  const jwtRatio = jwtRate / ceiling.signPerSecond;
  const rows = [
    ["openssl P-256 sign/s (1 core)", ceiling.signPerSecond.toFixed(0), ""],
    ["openssl P-256 verify/s (1 core)", ceiling.verifyPerSecond.toFixed(0), ""],
    ["ceiling: 1 verify + 1 sign per issuance", ceiling.issuancePerSecond.toFixed(0), "1.00"],
    ["X509-SVID renewal over the API by proof (kept-alive TLS, fresh key + CSR, durable record)", proofRenewal.perSecond.toFixed(0), `${issuanceRatio.toFixed(2)} of ceiling (target ≥ 0.30); p50 ${proofRenewal.p50.toFixed(1)} ms, p99 ${proofRenewal.p99.toFixed(1)} ms`],
    ["reference: bare node HTTPS server doing only the renewal's crypto (same TLS, same signature worker)", bare.load.perSecond.toFixed(0), `${(bare.load.perSecond / ceiling.issuancePerSecond).toFixed(2)} of ceiling; CPU per renewal: server ${bare.serverUs.toFixed(0)} µs, load generator ${bare.cpuPerRenewal.loadGeneratorUs.toFixed(0)} µs (Mandate: ${mandateRow.serverUs.toFixed(0)} µs, ${cpuPerRenewal.loadGeneratorUs.toFixed(0)} µs)`],
    ["X509-SVID renewal over the API by mTLS (new connection each)", issuance.perSecond.toFixed(0), `${(issuance.perSecond / ceiling.issuancePerSecond).toFixed(2)} of ceiling; p50 ${issuance.p50.toFixed(1)} ms`],
    ["baseline: new mTLS connections to /healthz (handshake only)", handshakes.perSecond.toFixed(0), `${(issuance.perSecond / handshakes.perSecond).toFixed(2)} of that rate is what renewal reaches`],
    ["  in-process: proof renewal (proof check + issuance + durable record, no HTTP)", inProcessProofRate.toFixed(0), `${(inProcessProofRate / ceiling.issuancePerSecond).toFixed(2)} of ceiling; ${inProcessProofCpuUs.toFixed(0)} µs CPU each`],
    ["  in-process: CSR parse + verify, leaf build + sign", coreRate.toFixed(0), `${(coreRate / ceiling.issuancePerSecond).toFixed(2)} of ceiling`],
    ["  in-process: the above + durable record + audit event", durableRate.toFixed(0), `${(durableRate / ceiling.issuancePerSecond).toFixed(2)} of ceiling`],
    ["baseline: @peculiar/x509 leaf building alone", libraryRate.toFixed(0), `${(libraryRate / ceiling.issuancePerSecond).toFixed(3)} of ceiling`],
    ["JWT-SVID minting (in-process)", jwtRate.toFixed(0), `${jwtRatio.toFixed(2)} of sign ceiling (target ≥ 0.50)`],
    ["JWT-SVID over the API (mTLS, audited)", jwtApi.perSecond.toFixed(0), `${(jwtApi.perSecond / ceiling.signPerSecond).toFixed(2)} of sign ceiling; p99 ${jwtApi.p99.toFixed(1)} ms`],
  ];
  const width = Math.max(...rows.map((r) => r[0]!.length));
  console.log("");
  for (const [name, value, note] of rows) console.log(`${name!.padEnd(width)}  ${value!.padStart(7)}/s  ${note}`);
  const results = {
    date: new Date().toISOString(),
    seconds: SECONDS,
    concurrency: CONCURRENCY,
    ceiling,
    proofRenewal,
    proofRenewalThreads: proofThreads,
    proofRenewalEventLoopBusy: proofLoopBusy,
    proofRenewalCpuPerRenewal: cpuPerRenewal,
    bareReference: Object.fromEntries(
      Object.entries({ worker: bare, inline: bareInline, cannedFloor: bareFloor }).map(([k, row]) => [k, { ...row.load, cpuPerRenewal: row.cpuPerRenewal, threads: row.threads, eventLoopBusy: row.loopBusy }]),
    ),
    inProcessProofRenewalPerSecond: inProcessProofRate,
    inProcessProofRenewalCpuUs: inProcessProofCpuUs,
    issuanceRatio,
    mtlsRenewal: issuance,
    handshakes,
    libraryLeafPerSecond: libraryRate,
    inProcessIssuancePerSecond: coreRate,
    inProcessDurableIssuancePerSecond: durableRate,
    jwtMintPerSecond: jwtRate,
    jwtRatio,
    jwtApi,
  };
  const out = process.env.BENCH_OUT ?? join(dataDir, "results.json");
  await writeFile(out, `${JSON.stringify(results, null, 2)}\n`);
  if (process.env.BENCH_OUT) console.log(`\nresults written to ${out}`);
} finally {
  await plane.close();
  await rm(dataDir, { recursive: true, force: true });
}
