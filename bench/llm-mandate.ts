import "../src/cli/threadpool.js";
import "reflect-metadata";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readCredentials } from "../src/agent/index.js";
import { runCli } from "../src/cli/index.js";
import { parseLlmConfig } from "../src/llm/index.js";
import type { AccessGate, GateDecision } from "../src/policy/index.js";
import { startControlPlane } from "../src/server/index.js";

/**
 * Mandate's control plane with the LLM proxy, in its own process, for the benchmark:
 * the fake provider behind it; rate limits, a budget and durable audit on; guardrails
 * off (they are measured separately). Until the access layer lands, the gate is a stand-in
 * that reads the agent from a cache filled from the registry (as a compiled policy
 * snapshot would) and allows the model. Prints {url, credentials} once an agent has joined.
 */
const fakeUrl = process.env.FAKE_URL!;
const dataDir = await mkdtemp(join(tmpdir(), "mandate-bench-llm-"));
const principals = new Map<string, GateDecision["principal"]>();
let plane: Awaited<ReturnType<typeof startControlPlane>>;
const gate: AccessGate = {
  async authorize(request) {
    const name = request.caller.agent ?? request.caller.spiffeId;
    let principal = principals.get(name);
    if (!principal) {
      const agent = await plane.context.agents.get(name);
      principal = { kind: "agent", name, spiffeId: request.caller.spiffeId, roles: agent.roles, labels: agent.labels };
      principals.set(name, principal);
    }
    return { allow: true, reasons: ["allowed: role grants llm:gpt-4.1-mini"], obligations: [], policyIds: ["bench"], principal };
  },
};
const config = parseLlmConfig({
  providers: [{ name: "fake", type: "openai", baseUrl: `${fakeUrl}/v1`, apiKeyEnv: "FAKE_KEY" }],
  models: [{ name: "gpt-4.1-mini", provider: "fake" }],
  limits: [{ scope: "agent", rpm: 100_000_000, tpm: 1_000_000_000_000 }, { scope: "model", rpm: 100_000_000 }],
  budgets: [{ scope: "team", period: "monthly", limitUsd: 1_000_000 }],
  guardrails: { secrets: {}, pii: {}, injection: {} },
  auditBeforeForward: process.env.AUDIT_MODE === "concurrent" ? "concurrent" : "durable",
});
plane = await startControlPlane({ dataDir, listen: "127.0.0.1:0", logLevel: "silent", accessGate: gate, llm: { config } });
const quiet = { out: () => undefined, err: (t: string) => process.stderr.write(t) };
const add: string[] = [];
await runCli(["node", "mandate", "agents", "add", "bench-agent", "--labels", "team=bench", "--data-dir", dataDir, "--format", "json"], { out: (t) => add.push(t), err: quiet.err });
const token = (JSON.parse(add.join("")) as { token: string }).token;
const credentialDir = join(dataDir, "agent-creds");
await runCli(["node", "mandate", "daemon", "--auth-server", plane.url, "--join-token", token, "--out", credentialDir, "--oneshot"], quiet);
const credentials = (await readCredentials(credentialDir))!;
process.stdout.write(`${JSON.stringify({ url: plane.url, ca: credentials.bundlePem, cert: credentials.svidPem, key: credentials.keyPem })}\n`);
process.on("SIGTERM", () => void plane.close().then(() => process.exit(0)));
