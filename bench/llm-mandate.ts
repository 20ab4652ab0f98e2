import "../src/cli/threadpool.js";
import "reflect-metadata";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseLlmConfig } from "../src/llm/index.js";
import { startControlPlane } from "../src/server/index.js";
import { applyBenchRoles, benchDelegationToken, joinBenchAgent } from "./access.js";

/**
 * Mandate's control plane with the LLM proxy, in its own process, for the benchmark:
 * the fake provider behind it; rate limits, a budget and durable audit on; guardrails
 * off (they are measured separately). The access gate is the real one: roles applied
 * with `mandate roles apply`, the agent holding one, and a delegation token for the
 * phases that present one. Prints {url, credentials, delegation token} once the agent has joined.
 */
const fakeUrl = process.env.FAKE_URL!;
const dataDir = await mkdtemp(join(tmpdir(), "mandate-bench-llm-"));
const config = parseLlmConfig({
  providers: [{ name: "fake", type: "openai", baseUrl: `${fakeUrl}/v1`, apiKeyEnv: "FAKE_KEY" }],
  models: [{ name: "gpt-4.1-mini", provider: "fake" }],
  limits: [{ scope: "agent", rpm: 100_000_000, tpm: 1_000_000_000_000 }, { scope: "model", rpm: 100_000_000 }],
  budgets: [{ scope: "team", period: "monthly", limitUsd: 1_000_000 }],
  guardrails: { secrets: {}, pii: {}, injection: {} },
  auditBeforeForward: process.env.AUDIT_MODE === "concurrent" ? "concurrent" : "durable",
});
const plane = await startControlPlane({ dataDir, listen: "127.0.0.1:0", logLevel: "silent", llm: { config } });
await applyBenchRoles(dataDir);
const { credentialDir, credentials } = await joinBenchAgent(dataDir, plane.url, "bench-agent", "team=bench");
const delegation = await benchDelegationToken(dataDir, "bench-agent", credentialDir, ["llm:gpt-4.1-mini"]);
process.stdout.write(`${JSON.stringify({ url: plane.url, ca: credentials.bundlePem, cert: credentials.svidPem, key: credentials.keyPem, delegation })}\n`);
// The benchmark asks for this process's CPU time around each phase (CPU µs per request).
process.on("message", (m) => {
  if (m === "cpu") process.send!({ cpu: process.cpuUsage() });
});
process.on("SIGTERM", () => void plane.close().then(() => process.exit(0)));
