import { request as httpRequest } from "node:http";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { parseLlmConfig } from "../src/llm/index.js";
import type { ControlPlane } from "../src/server/index.js";
import { FakeProvider } from "./fake-provider/server.js";
import { PROXY_ROLES, usePolicy } from "./helpers/access.js";
import { type TestAgent, joinTestAgent } from "./helpers/agent.js";
import { closeTestControlPlane, startTestControlPlane } from "./helpers/control-plane.js";
import { FAKE_KEY, anthropicThroughProxy, fakeLlmConfig, openAiThroughProxy } from "./helpers/llm.js";

/** deploy-auditor may use every model; restricted-agent one model, and is denied claude outright. */
const ROLES = `${PROXY_ROLES}
---
kind: role
name: one-model
allow:
  llm:
    - models: [gpt-4.1-mini]
deny:
  llm:
    - models: [claude-sonnet-4-5]
`;

/** What the fake sends for a request made to it directly (no proxy), to compare bytes with. */
function direct(fake: FakeProvider, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer }> {
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${fake.url}${path}`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${FAKE_KEY}`, "anthropic-version": "2023-06-01", ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end(payload);
  });
}

describe("LLM proxy: the official SDKs through Mandate, byte for byte", () => {
  const fake = new FakeProvider({ apiKey: FAKE_KEY });
  let plane: ControlPlane;
  let agent: TestAgent;
  let jwt: string;
  let openai: OpenAI;
  let anthropic: Anthropic;
  let restricted: TestAgent;

  beforeAll(async () => {
    await fake.start();
    plane = await startTestControlPlane({ llm: { config: parseLlmConfig(fakeLlmConfig(fake.url)), env: { FAKE_OPENAI_KEY: FAKE_KEY } } });
    await usePolicy(plane, ROLES);
    agent = await joinTestAgent(plane, "deploy-auditor", { roles: ["model-user"], labels: "team=sre" });
    restricted = await joinTestAgent(plane, "restricted-agent", { roles: ["one-model"] });
    jwt = await agent.jwtSvid();
    openai = openAiThroughProxy(plane, agent, jwt);
    anthropic = anthropicThroughProxy(plane, agent, jwt);
  });
  afterAll(async () => {
    await closeTestControlPlane(plane);
    await fake.close();
  });
  beforeEach(() => fake.reset());

  it("chat completion, non-streaming: the caller gets exactly the provider's bytes; the upstream got the proxy's key, not the agent's credential", async () => {
    const request = { model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: "status of checkout?" }] };
    const response = await openai.chat.completions.create(request).asResponse();
    const received = Buffer.from(await response.arrayBuffer());
    expect(response.status).toBe(200);
    expect(received.equals(fake.requests[0]!.sent)).toBe(true);
    expect(fake.requests[0]!.headers.authorization).toBe(`Bearer ${FAKE_KEY}`);
    expect(JSON.stringify(fake.requests[0]!.headers)).not.toContain(jwt.slice(-20));
    expect(response.headers.get("x-mandate-target")).toBe("fake-openai/gpt-4.1-mini");

    const parsed = await openai.chat.completions.create(request);
    expect(parsed.choices[0]!.message.content).toBe("Echo: status of checkout?");
  });

  it("chat completion, streaming, caller asked for usage: every byte passes unchanged", async () => {
    const request = { model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: "stream please" }], stream: true as const, stream_options: { include_usage: true } };
    const response = await openai.chat.completions.create(request).asResponse();
    const received = Buffer.from(await response.arrayBuffer());
    expect(received.equals(fake.requests[0]!.sent)).toBe(true);
    expect(received.toString()).toContain('"usage":{"prompt_tokens"');
  });

  it("chat completion, streaming, caller did not ask for usage: it sees exactly what the provider sends such a caller, though the proxy asked for usage", async () => {
    const request = { model: "gpt-4.1-mini", messages: [{ role: "user" as const, content: "stream, no usage" }], stream: true as const };
    const baseline = await direct(fake, "/v1/chat/completions", request);
    fake.reset();
    const response = await openai.chat.completions.create(request).asResponse();
    const received = Buffer.from(await response.arrayBuffer());
    expect(fake.requests[0]!.body!.stream_options).toEqual({ include_usage: true });
    expect(received.toString()).toBe(baseline.body.toString());
    // …and the usage the provider reported was recorded.
    await plane.context.llm!.settled();
    const events = await plane.context.audit.list({ type: "llm.request" });
    const done = events.find((e) => e.code === "OK" && (e.details as { stream?: boolean }).stream === true);
    expect((done!.details as { usage: { estimated: boolean; outputTokens: number } }).usage.estimated).toBe(false);
  });

  it("tool calls, streaming and not, through the SDK's own helpers", async () => {
    const tools = [{ type: "function" as const, function: { name: "read_pods", parameters: { type: "object", properties: { query: { type: "string" } } } } }];
    const plain = await openai.chat.completions.create({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "list pods" }], tools });
    const call = plain.choices[0]!.message.tool_calls![0]!;
    expect(call.type === "function" && call.function.name).toBe("read_pods");
    const stream = openai.chat.completions.stream({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "list pods in checkout" }], tools });
    const final = await stream.finalChatCompletion();
    const streamed = final.choices[0]!.message.tool_calls![0]!;
    expect(streamed.type === "function" && JSON.parse(streamed.function.arguments)).toEqual({ query: "list pods in checkout" });
    const events = await plane.context.audit.list({ type: "llm.request" });
    const recorded = events.filter((e) => e.code === "OK").flatMap((e) => (e.details as { toolCalls: { name: string }[] }).toolCalls);
    expect(recorded.map((t) => t.name)).toContain("read_pods");
  });

  it("responses API, streaming and not, byte for byte", async () => {
    const response = await openai.responses.create({ model: "gpt-4.1-mini", input: "hello" }).asResponse();
    expect(Buffer.from(await response.arrayBuffer()).equals(fake.requests[0]!.sent)).toBe(true);
    const streamed = await openai.responses.create({ model: "gpt-4.1-mini", input: "hello stream", stream: true }).asResponse();
    expect(Buffer.from(await streamed.arrayBuffer()).equals(fake.requests[1]!.sent)).toBe(true);
    const final = await openai.responses.stream({ model: "gpt-4.1-mini", input: "and parsed" }).finalResponse();
    expect(final.output_text).toBe("Echo: and parsed");
  });

  it("embeddings and the model list (only models the caller may use)", async () => {
    const response = await openai.embeddings.create({ model: "text-embedding-3-small", input: ["alpha", "beta"] }).asResponse();
    expect(Buffer.from(await response.arrayBuffer()).equals(fake.requests[0]!.sent)).toBe(true);
    const parsed = await openai.embeddings.create({ model: "text-embedding-3-small", input: "gamma" });
    expect(parsed.data[0]!.embedding).toHaveLength(8);
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id).sort()).toEqual(["azure-gpt", "gpt-4.1-mini", "text-embedding-3-small"]);
  });

  it("Azure OpenAI: deployment URL, api-version, api-key header", async () => {
    const result = await openai.chat.completions.create({ model: "azure-gpt", messages: [{ role: "user", content: "via azure" }] });
    expect(result.choices[0]!.message.content).toBe("Echo: via azure");
    expect(fake.requests[0]!.path).toBe("/openai/deployments/gpt41-deployment/chat/completions?api-version=2024-10-21");
    expect(fake.requests[0]!.headers["api-key"]).toBe(FAKE_KEY);
  });

  it("Anthropic messages with @anthropic-ai/sdk: text, tool use, streaming, byte for byte", async () => {
    const request = { model: "claude-sonnet-4-5", max_tokens: 200, messages: [{ role: "user" as const, content: "bonjour" }] };
    const response = await anthropic.messages.create(request).asResponse();
    expect(Buffer.from(await response.arrayBuffer()).equals(fake.requests[0]!.sent)).toBe(true);
    expect(fake.requests[0]!.headers["x-api-key"]).toBe(FAKE_KEY);
    const streamed = await anthropic.messages.create({ ...request, stream: true }).asResponse();
    expect(Buffer.from(await streamed.arrayBuffer()).equals(fake.requests[1]!.sent)).toBe(true);
    const final = await anthropic.messages.stream({ ...request, tools: [{ name: "read_logs", input_schema: { type: "object", properties: {} } }] }).finalMessage();
    expect(final.stop_reason).toBe("tool_use");
    const block = final.content.find((b) => b.type === "tool_use");
    expect(block && block.type === "tool_use" && block.name).toBe("read_logs");
  });

  it("a model the caller may not use is refused in the caller's wire format, saying why, and never reaches the provider", async () => {
    const jwtOfRestricted = await restricted.jwtSvid();
    const error = await anthropicThroughProxy(plane, restricted, jwtOfRestricted).messages.create({ model: "claude-sonnet-4-5", max_tokens: 10, messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Anthropic.PermissionDeniedError);
    const body = (error as InstanceType<typeof Anthropic.PermissionDeniedError>).error as { error: { type: string; message: string; mandate_code: string } };
    expect(body.error.type).toBe("permission_error");
    expect(body.error.message).toMatch(/role one-model of agent restricted-agent denies llm:claude-sonnet-4-5 \(deny\.llm\[0\]/);
    const restrictedOpenAi = openAiThroughProxy(plane, restricted, jwtOfRestricted);
    const openaiError = await restrictedOpenAi.embeddings.create({ model: "text-embedding-3-small", input: "x" }).catch((e: unknown) => e);
    expect(openaiError).toBeInstanceOf(OpenAI.PermissionDeniedError);
    expect((openaiError as InstanceType<typeof OpenAI.PermissionDeniedError>).code).toBe("PERMISSION_DENIED");
    expect((openaiError as Error).message).toContain("no role of agent restricted-agent allows llm:text-embedding-3-small");
    expect(fake.requests).toHaveLength(0);
    const denied = (await plane.context.audit.list({ type: "llm.request", decision: "deny", agent: "restricted-agent" }))[0]!;
    expect(denied.decision!.reasons[0]).toContain("llm:text-embedding-3-small");
    expect(denied.details).toMatchObject({ refusal: { deniedBy: "agent_roles" } });
    // The model list shows it only what its roles allow; the model it may use still answers.
    expect((await restrictedOpenAi.models.list()).data.map((m) => m.id)).toEqual(["gpt-4.1-mini"]);
    expect((await restrictedOpenAi.chat.completions.create({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "allowed" }] })).choices[0]!.message.content).toBe("Echo: allowed");
  });

  it("an unknown model is a 404 in the OpenAI shape; a wrong-format model says which endpoint to use", async () => {
    const missing = await openai.chat.completions.create({ model: "gpt-9", messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
    const wrong = await openai.chat.completions.create({ model: "claude-sonnet-4-5", messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(OpenAI.BadRequestError);
    expect((wrong as Error).message).toContain("/llm/anthropic/v1/messages");
  });

  it("records the request: intent before the provider was called, outcome with usage and cost after, linked", async () => {
    await openai.chat.completions.create({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "cost me" }] });
    await plane.context.llm!.settled();
    const events = await plane.context.audit.list({ type: "llm.request", agent: "deploy-auditor" });
    const outcome = events.find((e) => e.code === "OK")!;
    const intent = events.find((e) => e.id === outcome.correlation!.parentEvent)!;
    expect(intent.code).toBe("INTENT");
    expect(outcome.target).toMatchObject({ model: "gpt-4.1-mini", provider: "fake-openai", team: "sre" });
    const details = outcome.details as { usage: { inputTokens: number }; costUsd: number };
    expect(details.usage.inputTokens).toBeGreaterThan(0);
    expect(details.costUsd).toBeGreaterThan(0);
    const usage = await plane.context.llm!.recorder.report("agent", 0);
    expect(usage.find((r) => r.key === "deploy-auditor")!.requests).toBeGreaterThan(0);
  });
});
