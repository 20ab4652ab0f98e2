import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseLlmConfig } from "../src/llm/index.js";
import type { ControlPlane } from "../src/server/index.js";
import { FakeProvider } from "./fake-provider/server.js";
import { PROXY_ROLES, delegateTo, usePolicy } from "./helpers/access.js";
import { type TestAgent, joinTestAgent } from "./helpers/agent.js";
import { mandate } from "./helpers/cli.js";
import { closeTestControlPlane, startTestControlPlane } from "./helpers/control-plane.js";
import { FAKE_KEY } from "./helpers/llm.js";
import { burst } from "./helpers/llm-load.js";
import { addTestUser } from "./helpers/users.js";

/** $1 per thousand tokens, so costs are easy to reason about. */
const PRICE = { inputPerMTok: 1000, outputPerMTok: 1000 };

describe("rate limits and budgets, exact under concurrency (one proxy, memory store)", () => {
  const fake = new FakeProvider({ apiKey: FAKE_KEY });
  let plane: ControlPlane;
  let limited: TestAgent;
  let spender: TestAgent;
  let tokenBound: TestAgent;

  beforeAll(async () => {
    await fake.start();
    const config = parseLlmConfig({
      providers: [{ name: "fake", type: "openai", baseUrl: `${fake.url}/v1`, apiKeyEnv: "K" }],
      models: [
        { name: "gpt-4.1-mini", provider: "fake", price: PRICE },
        { name: "tpm-model", provider: "fake", upstreamModel: "gpt-4.1-mini", price: PRICE },
      ],
      limits: [
        { scope: "agent", name: "limited", rpm: 50 },
        { scope: "model", name: "tpm-model", tpm: 1000 },
      ],
      budgets: [{ scope: "team", name: "finance", period: "daily", limitUsd: 1, softPercent: 10 }],
      guardrails: { secrets: {}, pii: {}, injection: {} },
    });
    plane = await startTestControlPlane({ llm: { config, env: { K: FAKE_KEY } } });
    await usePolicy(plane, PROXY_ROLES);
    await addTestUser(plane.dataDir, "alice", ["delegator"]);
    const roles = ["model-user"];
    limited = await joinTestAgent(plane, "limited", { roles });
    spender = await joinTestAgent(plane, "spender", { roles, labels: "team=finance" });
    tokenBound = await joinTestAgent(plane, "token-bound", { roles });
  });
  afterAll(async () => {
    await closeTestControlPlane(plane);
    await fake.close();
  });
  beforeEach(() => fake.reset());

  it("200 concurrent requests against 50 rpm: exactly 50 reach the provider, 150 get 429 with Retry-After naming the limit", async () => {
    const results = await burst(`${plane.url}/llm/v1/chat/completions`, {
      n: 200,
      ca: limited.credentials.bundlePem,
      authorization: `Bearer ${await limited.jwtSvid()}`,
      body: (i) => ({ model: "gpt-4.1-mini", messages: [{ role: "user", content: `r${i}` }], max_tokens: 20 }),
    });
    const ok = results.filter((r) => r.status === 200);
    const limitedOut = results.filter((r) => r.status === 429);
    expect(ok).toHaveLength(50);
    expect(limitedOut).toHaveLength(150);
    expect(fake.requests).toHaveLength(50);
    const sample = limitedOut[0]!;
    expect(Number(sample.headers["retry-after"])).toBeGreaterThan(0);
    expect(sample.headers["x-mandate-limit"]).toBe("agent=limited; rpm=50");
    expect(sample.body.error.message).toContain("agent limited is over its 50 requests per minute");
    expect(sample.body.error.type).toBe("rate_limit_exceeded");
  });

  it("tokens per minute: estimated before (prompt + max_tokens), corrected to actual usage after", async () => {
    const ca = tokenBound.credentials.bundlePem;
    const authorization = `Bearer ${await tokenBound.jwtSvid()}`;
    const url = `${plane.url}/llm/v1/chat/completions`;
    // Each request is estimated at ~12 prompt tokens + 200 output: four fit in 1000 at once, the fifth does not.
    // The provider holds its answers until all ten have arrived or been refused, so they are in flight together.
    let release!: () => void;
    fake.script.fallback = { until: new Promise<void>((r) => (release = r)) };
    let refused = 0;
    const pending = burst(url, { n: 10, ca, authorization, body: () => ({ model: "tpm-model", messages: [{ role: "user", content: "hi" }], max_tokens: 200 }), onResult: (r) => void (r.status === 429 && refused++) });
    while (refused + fake.requests.length < 10) await new Promise((r) => setTimeout(r, 20));
    release();
    const first = await pending;
    const admitted = first.filter((r) => r.status === 200).length;
    expect(admitted).toBe(4);
    expect(first.filter((r) => r.status === 429)[0]!.body.error.message).toContain("tokens per minute");
    fake.script.clear();
    // Actual usage was ~15 tokens each, so the correction frees most of the window.
    const used = first.filter((r) => r.status === 200).reduce((n, r) => n + r.body.usage.total_tokens, 0);
    expect(used).toBeLessThan(100);
    const second = await burst(url, { n: 4, ca, authorization, body: () => ({ model: "tpm-model", messages: [{ role: "user", content: "hi" }], max_tokens: 200 }) });
    expect(second.filter((r) => r.status === 200).length).toBe(4);
    const tooBig = await burst(url, { n: 1, ca, authorization, body: () => ({ model: "tpm-model", messages: [{ role: "user", content: "hi" }], max_tokens: 5000 }) });
    expect(tooBig[0]!.status).toBe(429);
    expect(tooBig[0]!.body.error.message).toContain("exceed the model tpm-model limit");
  });

  it("a burst of 200 concurrent requests cannot overspend a budget; the soft threshold alerts once", async () => {
    // The provider holds every answer until the whole burst has arrived or been refused, so all of it is
    // in flight at once and only the reservations stand between it and the limit.
    let release!: () => void;
    fake.script.fallback = { until: new Promise<void>((r) => (release = r)) };
    let refusedSoFar = 0;
    const pending = burst(`${plane.url}/llm/v1/chat/completions`, {
      n: 200,
      ca: spender.credentials.bundlePem,
      authorization: `Bearer ${await spender.jwtSvid()}`,
      body: (i) => ({ model: "gpt-4.1-mini", messages: [{ role: "user", content: `spend ${i}` }], max_tokens: 50 }),
      onResult: (r) => void (r.status === 402 && refusedSoFar++),
    });
    while (refusedSoFar + fake.requests.length < 200) await new Promise((r) => setTimeout(r, 20));
    const inFlight = fake.requests.length;
    release();
    const results = await pending;
    fake.script.clear();
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 402);
    expect(ok.length + refused.length).toBe(200);
    expect(ok.length).toBeGreaterThan(0);
    expect(refused[0]!.body.error.type).toBe("insufficient_quota");
    expect(refused[0]!.body.error.message).toContain("team finance");
    expect(refused[0]!.headers["x-should-retry"]).toBe("false");
    await plane.context.llm!.settled();
    const row = (await plane.context.llm!.recorder.report("team", 0)).find((r) => r.key === "finance");
    const events = await plane.context.audit.list({ type: "llm.request", agent: "spender", limit: 1000 });
    const estimates = events.filter((e) => e.code === "INTENT").map((e) => (e.details as { estimate: { costUsd: number } }).estimate.costUsd);
    const oneEstimate = Math.max(...estimates);
    expect(row!.key).toBe("finance");
    expect(row!.costUsd).toBeLessThanOrEqual(1 + oneEstimate);
    // Reservations hold the estimate, so what was in flight at once is what the estimates allow, not more.
    expect(ok.length).toBe(inFlight);
    expect(inFlight).toBe(Math.floor(1 / oneEstimate));
    const alerts = await plane.context.audit.list({ type: "llm.budget.threshold" });
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.outcome.message).toContain("over 10% of its daily $1 budget");
    // Spend is settled at the actual cost: a request whose estimate would cross what is left is refused.
    const after = await burst(`${plane.url}/llm/v1/chat/completions`, { n: 1, ca: spender.credentials.bundlePem, authorization: `Bearer ${await spender.jwtSvid()}`, body: () => ({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "more" }], max_tokens: 900 }) });
    expect(after[0]!.status).toBe(402);
  });

  it("a delegation's max_spend obligation is a budget for that delegation", async () => {
    const jwt = await tokenBound.jwtSvid();
    const grant = await delegateTo(plane, tokenBound, { task: "task-1", allow: ["llm:gpt-4.1-mini"], maxSpendUsd: 0.05 });
    const results = await burst(`${plane.url}/llm/v1/chat/completions`, {
      n: 20,
      ca: tokenBound.credentials.bundlePem,
      authorization: `Bearer ${jwt}~${grant.token}`,
      body: () => ({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "x" }], max_tokens: 10 }),
    });
    const ok = results.filter((r) => r.status === 200).length;
    expect(ok).toBeGreaterThan(0);
    expect(ok).toBeLessThan(20);
    const refusal = results.find((r) => r.status === 402)!;
    expect(refusal.body.error.message).toContain(`delegation ${grant.id}`);
    expect(refusal.body.error.budget.source).toBe("delegation");
    // The usage is counted against that delegation, and stays within its ceiling.
    await plane.context.llm!.settled();
    const row = (await plane.context.llm!.recorder.report("delegation", 0)).find((r) => r.key === grant.id);
    expect(row!.requests).toBe(ok);
    expect(row!.costUsd).toBeLessThanOrEqual(0.05);
  });

  it("sub-delegations share their parent's ceiling: siblings together cannot spend more than it", async () => {
    const lead = await joinTestAgent(plane, "spend-lead", { roles: ["delegator"] });
    const siblings = [await joinTestAgent(plane, "sib-a", { roles: ["model-user"] }), await joinTestAgent(plane, "sib-b", { roles: ["model-user"] })];
    const parent = await delegateTo(plane, lead, { task: "task-siblings", allow: ["llm:gpt-4.1-mini", "delegate:sib-*"], maxSpendUsd: 0.05 });
    const tokens: string[] = [];
    const childIds: string[] = [];
    for (const sibling of siblings) {
      // Each child may spend $0.04 on its own: two of them could reach $0.08, so only the parent's ledger keeps them to $0.05.
      const child = await mandate("delegate", "--parent", parent.id, "--agent", sibling.name, "--ttl", "10m", "--allow", "llm:gpt-4.1-mini", "--max-spend", "0.04", "--credentials", lead.credentialDir, "--format", "json");
      expect(child.code, child.stderr).toBe(0);
      childIds.push(child.json().id);
      const fetched = await mandate("delegations", "token", "--task", "task-siblings", "--credentials", sibling.credentialDir);
      expect(fetched.code, fetched.stderr).toBe(0);
      tokens.push(fetched.stdout.trim());
    }
    const spend = async (i: number, n: number) =>
      burst(`${plane.url}/llm/v1/chat/completions`, {
        n,
        ca: siblings[i]!.credentials.bundlePem,
        authorization: `Bearer ${await siblings[i]!.jwtSvid()}~${tokens[i]}`,
        body: () => ({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "x" }], max_tokens: 10 }),
      });
    const first = await spend(0, 20);
    const firstOk = first.filter((r) => r.status === 200).length;
    expect(firstOk).toBeGreaterThan(0);
    expect(first.some((r) => r.status === 402)).toBe(true);
    const second = await spend(1, 20);
    const refused = second.find((r) => r.status === 402);
    expect(refused, "the second sibling is stopped by the parent's ceiling").toBeDefined();
    expect(refused!.body.error.message).toContain(`delegation ${parent.id}`);
    await plane.context.llm!.settled();
    const rows = (await plane.context.llm!.recorder.report("delegation", 0)).filter((r) => childIds.includes(r.key));
    const siblingCost = rows.reduce((sum, r) => sum + r.costUsd, 0);
    expect(siblingCost).toBeGreaterThan(0);
    expect(siblingCost, "what both children spent together stays within the parent's $0.05").toBeLessThanOrEqual(0.05);
  });
});
