import { request } from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/server/index.js";
import { FakeProvider } from "./fake-provider/server.js";
import { PROXY_ROLES, usePolicy } from "./helpers/access.js";
import { type TestAgent, joinTestAgent } from "./helpers/agent.js";
import { mandate } from "./helpers/cli.js";
import { closeTestControlPlane, startTestControlPlane } from "./helpers/control-plane.js";
import { FAKE_KEY, openAiThroughProxy } from "./helpers/llm.js";

describe("mandate llm providers|models and mandate usage", () => {
  const fake = new FakeProvider({ apiKey: FAKE_KEY });
  let plane: ControlPlane;
  let agent: TestAgent;
  const cli = (...args: string[]) => mandate(...args, "--data-dir", plane.dataDir);

  beforeAll(async () => {
    await fake.start();
    plane = await startTestControlPlane({ llm: { env: { UPSTREAM_KEY: FAKE_KEY } } });
    await usePolicy(plane, PROXY_ROLES);
    agent = await joinTestAgent(plane, "cli-agent", { roles: ["model-user"], labels: "team=platform" });
  });
  afterAll(async () => {
    await closeTestControlPlane(plane);
    await fake.close();
  });

  it("adds a provider whose key stays in the proxy's environment, never printed back", async () => {
    const missing = await cli("llm", "providers", "add", "nokey", "--type", "openai", "--api-key-env", "NOT_SET_ANYWHERE");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("NOT_SET_ANYWHERE is not set in the proxy's environment");
    const add = await cli("llm", "providers", "add", "upstream", "--type", "openai-compatible", "--base-url", `${fake.url}/v1`, "--api-key-env", "UPSTREAM_KEY", "--timeout", "5s");
    expect(add.code, add.stderr).toBe(0);
    expect(add.stdout).toContain("key from $UPSTREAM_KEY");
    const ls = await cli("llm", "providers", "ls", "--format", "json");
    expect(ls.json()).toEqual([expect.objectContaining({ name: "upstream", type: "openai-compatible", apiKeyEnv: "UPSTREAM_KEY", status: "ok" })]);
    const table = await cli("llm", "providers", "ls");
    expect(table.stdout).toContain("env UPSTREAM_KEY");
    for (const output of [add.stdout, ls.stdout, table.stdout]) expect(output).not.toContain(FAKE_KEY);
    const events = await plane.context.audit.list({ type: "llm.provider.create" });
    expect(JSON.stringify(events)).not.toContain(FAKE_KEY);
  });

  it("adds models (one target, and an alias over two), which agents can call at once", async () => {
    expect((await cli("llm", "models", "add", "local-llama", "--provider", "upstream", "--upstream-model", "llama3.1:8b", "--input-price", "0.1", "--output-price", "0.2")).code).toBe(0);
    const alias = await cli("llm", "models", "add", "smart", "--target", "upstream:gpt-4.1", "--target", "upstream:gpt-4.1-mini", "--strategy", "fallback");
    expect(alias.code, alias.stderr).toBe(0);
    const unknown = await cli("llm", "models", "add", "ghost", "--provider", "nope");
    expect(unknown.stderr).toContain("unknown provider nope");
    const ls = await cli("llm", "models", "ls");
    expect(ls.stdout).toContain("upstream/llama3.1:8b");
    expect(ls.stdout).toContain("upstream/gpt-4.1, upstream/gpt-4.1-mini");

    const openai = openAiThroughProxy(plane, agent, await agent.jwtSvid());
    const answer = await openai.chat.completions.create({ model: "local-llama", messages: [{ role: "user", content: "hello llama" }] });
    expect(answer.choices[0]!.message.content).toBe("Echo: hello llama");
    expect(fake.requests.at(-1)!.body!.model).toBe("llama3.1:8b");
    fake.script.push({ status: 500 });
    const failover = await openai.chat.completions.create({ model: "smart", messages: [{ role: "user", content: "fail over" }] });
    expect(failover.choices[0]!.message.content).toBe("Echo: fail over");
    expect(fake.requests.at(-1)!.body!.model).toBe("gpt-4.1-mini");
  });

  it("mandate usage reports requests, tokens and cost by team, agent or model, as a table, JSON or CSV", async () => {
    const byTeam = await cli("usage", "--by", "team", "--since", "1h", "--format", "json");
    expect(byTeam.code, byTeam.stderr).toBe(0);
    const team = byTeam.json().rows.find((r: { key: string }) => r.key === "platform");
    expect(team.requests).toBe(2);
    expect(team.inputTokens).toBeGreaterThan(0);
    expect(team.costUsd).toBeGreaterThan(0);
    const byModel = await cli("usage", "--by", "model");
    expect(byModel.stdout).toMatch(/local-llama\s+1\s+0/);
    expect(byModel.stdout).toContain("2 requests");
    const csv = await cli("usage", "--by", "agent", "--format", "csv");
    const [header, row] = csv.stdout.trim().split("\n");
    expect(header).toBe("agent,requests,errors,input_tokens,output_tokens,cached_tokens,reasoning_tokens,cost_usd");
    expect(row!.startsWith("cli-agent,2,0,")).toBe(true);
  });

  it("the same usage is on the Prometheus endpoint (scraped with an SVID)", async () => {
    const text = await new Promise<string>((resolve, reject) => {
      const req = request(`${plane.url}/metrics`, { ca: agent.credentials.bundlePem, cert: agent.credentials.svidPem, key: agent.credentials.keyPem }, (res) => {
        let body = "";
        res.on("data", (c: Buffer) => (body += c.toString()));
        res.on("end", () => resolve(body));
      });
      req.on("error", reject);
      req.end();
    });
    expect(text).toMatch(/mandate_llm_requests_total\{endpoint="chat",provider="upstream",outcome="ok",model="local-llama",agent="cli-agent",team="platform"\} 1/);
    expect(text).toMatch(/mandate_llm_tokens_total\{model="smart",agent="cli-agent",team="platform",kind="input"\} \d+/);
    expect(text).toContain("mandate_llm_cost_usd_total");
    expect(text).toContain("mandate_llm_time_to_first_byte_seconds_bucket");
    expect(text).toMatch(/mandate_llm_upstream_attempts_total\{target="upstream\/gpt-4.1",outcome="500"\} 1/);
  });

  it("removes models and providers; a provider in use cannot be removed", async () => {
    const inUse = await cli("llm", "providers", "rm", "upstream");
    expect(inUse.stderr).toContain("used by model(s) local-llama, smart");
    expect((await cli("llm", "models", "rm", "local-llama")).code).toBe(0);
    expect((await cli("llm", "models", "rm", "smart")).code).toBe(0);
    expect((await cli("llm", "providers", "rm", "upstream")).code).toBe(0);
    expect((await cli("llm", "models", "ls", "--format", "json")).json()).toEqual([]);
  });
});
