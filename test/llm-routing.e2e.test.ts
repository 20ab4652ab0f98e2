import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseLlmConfig } from "../src/llm/index.js";
import type { ControlPlane } from "../src/server/index.js";
import { FakeProvider } from "./fake-provider/server.js";
import { PROXY_ROLES, usePolicy } from "./helpers/access.js";
import { type TestAgent, joinTestAgent } from "./helpers/agent.js";
import { closeTestControlPlane, startTestControlPlane } from "./helpers/control-plane.js";
import { FAKE_KEY, openAiThroughProxy } from "./helpers/llm.js";

describe("LLM routing under scripted provider failures", () => {
  const primary = new FakeProvider({ apiKey: FAKE_KEY });
  const secondary = new FakeProvider({ apiKey: FAKE_KEY });
  const third = new FakeProvider({ apiKey: FAKE_KEY });
  let plane: ControlPlane;
  let agent: TestAgent;
  let openai: OpenAI;

  beforeAll(async () => {
    await Promise.all([primary.start(), secondary.start(), third.start()]);
    const provider = (name: string, fake: FakeProvider, timeoutMs = 4000) => ({ name, type: "openai", baseUrl: `${fake.url}/v1`, apiKeyEnv: "FAKE_KEY", timeoutMs, streamIdleTimeoutMs: 1500 });
    const config = parseLlmConfig({
      providers: [provider("primary", primary, 800), provider("secondary", secondary), provider("third", third)],
      models: [
        { name: "resilient", strategy: "fallback", retries: 3, backoffMs: 10, maxBackoffMs: 200, targets: [{ provider: "primary", upstreamModel: "gpt-4.1" }, { provider: "secondary", upstreamModel: "gpt-4.1" }] },
        { name: "balanced", strategy: "loadbalance", retries: 2, backoffMs: 10, targets: [{ provider: "primary", upstreamModel: "gpt-4.1-mini", weight: 3 }, { provider: "secondary", upstreamModel: "gpt-4.1-mini", weight: 1 }] },
        { name: "fastest", strategy: "latency", retries: 1, backoffMs: 10, targets: [{ provider: "primary", upstreamModel: "m" }, { provider: "third", upstreamModel: "m" }] },
        { name: "single", provider: "third", upstreamModel: "gpt-4.1", retries: 2, backoffMs: 10, maxBackoffMs: 2000 },
        { name: "guarded", strategy: "fallback", retries: 1, backoffMs: 10, targets: [{ provider: "primary", upstreamModel: "cb-model" }, { provider: "secondary", upstreamModel: "cb-model" }] },
      ],
      circuitBreaker: { failureThreshold: 3, cooldownMs: 60_000 },
    });
    plane = await startTestControlPlane({ llm: { config, env: { FAKE_KEY } } });
    await usePolicy(plane, PROXY_ROLES);
    agent = await joinTestAgent(plane, "router-agent", { roles: ["model-user"] });
    openai = openAiThroughProxy(plane, agent, await agent.jwtSvid());
  });
  afterAll(async () => {
    await closeTestControlPlane(plane);
    await Promise.all([primary.close(), secondary.close(), third.close()]);
  });
  beforeEach(() => {
    primary.reset();
    secondary.reset();
    third.reset();
  });

  const ask = (model: string, content = "hi") => openai.chat.completions.create({ model, messages: [{ role: "user", content }] }).withResponse();

  it("fallback: 429, 500 and a hang on the primary each move the request to the secondary", async () => {
    for (const step of [{ status: 429 }, { status: 500 }, { hang: true }]) {
      primary.reset();
      secondary.reset();
      primary.script.push(step);
      const { data, response } = await ask("resilient");
      expect(data.choices[0]!.message.content).toBe("Echo: hi");
      expect(response.headers.get("x-mandate-target")).toBe("secondary/gpt-4.1");
      expect(primary.requests).toHaveLength(1);
      expect(secondary.requests).toHaveLength(1);
    }
  });

  it("when every target fails, the last provider error goes back as the provider sent it", async () => {
    primary.script.fallback = { status: 503 };
    secondary.script.fallback = { status: 503 };
    try {
      const error = await ask("resilient").catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.InternalServerError);
      expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
      // 1 + retries attempts in all, alternating targets.
      expect(primary.requests.length + secondary.requests.length).toBe(4);
    } finally {
      primary.script.clear();
      secondary.script.clear();
    }
  });

  it("retries one target after Retry-After, and does not wait longer than the cap", async () => {
    third.script.push({ status: 429, retryAfter: 1 });
    const started = Date.now();
    const { data } = await ask("single");
    expect(data.choices[0]!.message.content).toBe("Echo: hi");
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(third.requests).toHaveLength(2);

    third.reset();
    third.script.push({ status: 429, retryAfter: 30 });
    const error = await ask("single").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).headers.get("retry-after")).toBe("30");
    expect(third.requests).toHaveLength(1);
  });

  it("load balancing follows the weights, and a failing target's share moves to the other", async () => {
    for (let i = 0; i < 120; i++) await ask("balanced", `n${i}`);
    const p = primary.requests.length;
    const s = secondary.requests.length;
    expect(p + s).toBe(120);
    // weight 3:1 → about 90:30; a wide band keeps this deterministic enough without being vacuous.
    expect(p).toBeGreaterThan(70);
    expect(s).toBeGreaterThan(12);

    primary.reset();
    secondary.reset();
    primary.script.fallback = { status: 500 };
    try {
      for (let i = 0; i < 20; i++) {
        const { data } = await ask("balanced", `f${i}`);
        expect(data.choices[0]!.message.content).toBe(`Echo: f${i}`);
      }
      expect(secondary.requests).toHaveLength(20);
    } finally {
      primary.script.clear();
    }
  });

  it("latency strategy prefers the target that answers faster", async () => {
    primary.script.fallback = { delayMs: 150 };
    try {
      for (let i = 0; i < 12; i++) await ask("fastest");
      expect(third.requests.length).toBeGreaterThan(primary.requests.length);
      expect(third.requests.length).toBeGreaterThanOrEqual(9);
    } finally {
      primary.script.clear();
    }
  });

  it("circuit breaker: after repeated failures the primary is skipped without being called", async () => {
    primary.script.fallback = { status: 500 };
    try {
      // Three consecutive failures (threshold 3) open the primary's breaker; each request still succeeds on the secondary.
      for (let i = 0; i < 3; i++) await ask("guarded");
      expect(primary.requests).toHaveLength(3);
      for (let i = 0; i < 5; i++) {
        const { response } = await ask("guarded");
        expect(response.headers.get("x-mandate-target")).toBe("secondary/cb-model");
      }
      expect(primary.requests).toHaveLength(3);
      expect(secondary.requests).toHaveLength(8);
    } finally {
      primary.script.clear();
    }
  });

  it("a provider that stalls mid-stream: the stream ends with an error event the SDK raises, and the stall is recorded", async () => {
    third.script.push({ stallAfterEvents: 2 });
    const stream = await openai.chat.completions.create({ model: "single", messages: [{ role: "user", content: "stall please" }], stream: true });
    const seen: string[] = [];
    const error = await (async () => {
      for await (const chunk of stream) seen.push(chunk.choices[0]?.delta?.content ?? "");
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as Error).message).toContain("sent nothing for");
    expect(seen.length).toBeGreaterThan(0);
    await plane.context.llm!.settled();
    const events = await plane.context.audit.list({ type: "llm.request" });
    expect(events.some((e) => e.code === "UPSTREAM_FAILED" && (e.outcome.message ?? "").includes("sent nothing"))).toBe(true);
  });
});
