import "../src/cli/threadpool.js";
import { runCli } from "../src/cli/index.js";
import { startControlPlane } from "../src/server/index.js";
import { applyBenchRoles, benchDelegationToken, joinBenchAgent } from "./access.js";

/**
 * One control plane for `bench/mcp.ts`, in a process of its own as a deployment runs it:
 * the HTTP upstream and the stdio server registered (per session and `--stateless`), the
 * bench roles applied, an agent joined and a delegation token made. Prints
 * {url, tls, delegation} once ready; over IPC answers "cpu" (its CPU time so far),
 * "memory" (heap + external after a GC, and its session count) and "close".
 *   env: PLANE_DIR, UPSTREAM_URL, EVERYTHING (server-everything's entry point)
 */
const dir = process.env.PLANE_DIR!;
const upstream = process.env.UPSTREAM_URL!;
const everything = process.env.EVERYTHING!;
const quiet = { out: () => undefined, err: (t: string) => process.stderr.write(t) };
const plane = await startControlPlane({ dataDir: dir, listen: "127.0.0.1:0", logLevel: "silent", caActivationDelayMs: 0, mcpLimits: { maxSessionsPerCaller: 2048, maxProcessesPerServer: 128 } });
await runCli(["node", "mandate", "mcp", "servers", "add", "http", "--url", upstream, "--owner", "bench", "--data-dir", dir], quiet);
await runCli(["node", "mandate", "mcp", "servers", "add", "stdio", "--command", `${process.execPath} ${everything} stdio`, "--owner", "bench", "--data-dir", dir], quiet);
await runCli(["node", "mandate", "mcp", "servers", "add", "stdio-shared", "--command", `${process.execPath} ${everything} stdio`, "--stateless", "--owner", "bench", "--data-dir", dir], quiet);
await applyBenchRoles(dir);
const { credentialDir, credentials: c } = await joinBenchAgent(dir, plane.url, "bench-agent");
const delegation = await benchDelegationToken(dir, "bench-agent", credentialDir, ["mcp:*/echo"]);
process.stdout.write(`${JSON.stringify({ url: plane.url, tls: { ca: c.bundlePem, cert: c.svidPem, key: c.keyPem }, delegation: { "x-mandate-delegation": delegation } })}\n`);

const gc = (globalThis as { gc?: () => void }).gc;
process.on("message", (m) => {
  if (m === "cpu") return process.send!({ cpu: process.cpuUsage() });
  if (m === "memory") {
    gc?.();
    const { heapUsed, external } = process.memoryUsage();
    return process.send!({ bytes: heapUsed + external, sessions: plane.context.mcp!.proxy.sessionCount, measuredWithGc: Boolean(gc) });
  }
  // The bench removes the directory: it owns it (the durable relay's journal lives there too).
  if (m === "close") void plane.close().then(() => process.send!({ closed: true }, () => process.exit(0)));
});
