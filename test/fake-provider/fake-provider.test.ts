import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FakeProvider } from "./server.js";

/**
 * The fake is only useful if the official clients accept it as the real thing: every
 * shape here is parsed by the SDKs' own types and stream helpers.
 */
describe("fake provider speaks the wire formats the official SDKs expect", () => {
  const fake = new FakeProvider({ apiKey: "sk-fake-upstream" });
  let openai: OpenAI;
  let anthropic: Anthropic;

  beforeAll(async () => {
    const url = await fake.start();
    openai = new OpenAI({ baseURL: `${url}/v1`, apiKey: "sk-fake-upstream", maxRetries: 0 });
    anthropic = new Anthropic({ baseURL: url, apiKey: "sk-fake-upstream", maxRetries: 0 });
  });
  afterAll(() => fake.close());

  it("chat completions: text, tool calls, and the streamed chunks with usage", async () => {
    const text = await openai.chat.completions.create({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "hello there" }] });
    expect(text.choices[0]!.message.content).toBe("Echo: hello there");
    expect(text.usage!.total_tokens).toBe(text.usage!.prompt_tokens + text.usage!.completion_tokens);

    const tool = await openai.chat.completions.create({
      model: "gpt-4.1-mini",
      messages: [{ role: "user", content: "weather in Paris" }],
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { query: { type: "string" } } } } }],
    });
    const call = tool.choices[0]!.message.tool_calls![0]!;
    expect(call.type === "function" && call.function.name).toBe("get_weather");

    const stream = openai.chat.completions.stream({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "stream me" }], stream_options: { include_usage: true } });
    const final = await stream.finalChatCompletion();
    expect(final.choices[0]!.message.content).toBe("Echo: stream me");
    expect(final.usage?.completion_tokens).toBeGreaterThan(0);

    const toolStream = openai.chat.completions.stream({
      model: "gpt-4.1-mini",
      messages: [{ role: "user", content: "weather in Rome" }],
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: {} } } }],
    });
    const toolFinal = await toolStream.finalChatCompletion();
    const streamedCall = toolFinal.choices[0]!.message.tool_calls![0]!;
    expect(streamedCall.type === "function" && JSON.parse(streamedCall.function.arguments)).toEqual({ query: "weather in Rome" });
  });

  it("responses, embeddings (base64 by default in the SDK) and models", async () => {
    const response = await openai.responses.create({ model: "gpt-4.1-mini", input: "hi" });
    expect(response.output_text).toBe("Echo: hi");
    const stream = openai.responses.stream({ model: "gpt-4.1-mini", input: "streamed" });
    const final = await stream.finalResponse();
    expect(final.output_text).toBe("Echo: streamed");
    expect(final.usage?.output_tokens).toBeGreaterThan(0);

    const embedding = await openai.embeddings.create({ model: "text-embedding-3-small", input: ["a", "bb"] });
    expect(embedding.data).toHaveLength(2);
    expect(embedding.data[0]!.embedding).toHaveLength(8);
    const models = await openai.models.list();
    expect(models.data.map((m) => m.id)).toContain("gpt-4.1-mini");
  });

  it("anthropic messages: text, tool use, and the streamed event sequence", async () => {
    const text = await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 100, messages: [{ role: "user", content: "bonjour" }] });
    expect(text.content[0]!.type === "text" && text.content[0]!.text).toBe("Echo: bonjour");
    const tool = await anthropic.messages.create({
      model: "claude-sonnet-4-5",
      max_tokens: 100,
      messages: [{ role: "user", content: "look up" }],
      tools: [{ name: "lookup", input_schema: { type: "object", properties: {} } }],
    });
    expect(tool.stop_reason).toBe("tool_use");
    const stream = anthropic.messages.stream({ model: "claude-sonnet-4-5", max_tokens: 100, messages: [{ role: "user", content: "stream" }] });
    const final = await stream.finalMessage();
    expect(final.content[0]!.type === "text" && final.content[0]!.text).toBe("Echo: stream");
    expect(final.usage.output_tokens).toBeGreaterThan(1);
  });

  it("scripted failures carry the provider's own error bodies and Retry-After", async () => {
    fake.script.push({ status: 429, retryAfter: 3 });
    const error = await openai.chat.completions.create({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect((error as InstanceType<typeof OpenAI.RateLimitError>).headers.get("retry-after")).toBe("3");
    fake.script.push({ status: 529 });
    const overloaded = await anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 10, messages: [{ role: "user", content: "x" }] }).catch((e: unknown) => e);
    expect((overloaded as InstanceType<typeof Anthropic.APIError>).status).toBe(529);
    const wrongKey = new OpenAI({ baseURL: `${fake.url}/v1`, apiKey: "nope", maxRetries: 0 });
    await expect(wrongKey.models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
  });
});
