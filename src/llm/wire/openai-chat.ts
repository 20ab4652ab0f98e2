import type { PromptText, ToolCallRecord, Usage } from "../types.js";
import { type EventReading, type Json, type OutputView, type StreamObserver, type Wire, contentTexts, invalid, num, optionalPositiveInt, parseJson, requireModel, streamFlag } from "./wire.js";

/** OpenAI usage objects (chat completions and the usage chunk of a stream). */
export function openAiChatUsage(usage: unknown): Partial<Usage> | undefined {
  if (!usage || typeof usage !== "object") return undefined;
  const u = usage as Json;
  const prompt = (u.prompt_tokens_details ?? {}) as Json;
  const completion = (u.completion_tokens_details ?? {}) as Json;
  return { inputTokens: num(u.prompt_tokens), outputTokens: num(u.completion_tokens), cachedInputTokens: num(prompt.cached_tokens), reasoningTokens: num(completion.reasoning_tokens), cacheWriteTokens: 0, estimated: false };
}

const USAGE_NULL = ',"usage":null}';

export const openAiChatWire: Wire = {
  endpoint: "chat",

  inspect(body) {
    const model = requireModel(body);
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0) throw invalid("`messages` must be a non-empty array", "messages");
    const texts: PromptText[] = [];
    messages.forEach((message, i) => {
      if (!message || typeof message !== "object" || typeof (message as Json).role !== "string") throw invalid(`messages[${i}] must be an object with a string \`role\``, `messages[${i}]`);
      const m = message as Json;
      const role = m.role as string;
      contentTexts(m, "content", role === "function" ? "tool" : role, texts);
      if (Array.isArray(m.tool_calls)) {
        for (const call of m.tool_calls as Json[]) {
          const fn = call?.function as Json | undefined;
          if (fn && typeof fn.arguments === "string") texts.push({ role, text: fn.arguments, replace: (t) => (fn.arguments = t) });
        }
      }
    });
    return { model, stream: streamFlag(body), maxOutputTokens: optionalPositiveInt(body, "max_completion_tokens", "max_tokens"), texts };
  },

  upstreamBody(body, upstreamModel) {
    const out: Json = { ...body, model: upstreamModel };
    const options = body.stream_options && typeof body.stream_options === "object" ? (body.stream_options as Json) : undefined;
    const hideUsage = body.stream === true && options?.include_usage !== true;
    if (hideUsage) out.stream_options = { ...options, include_usage: true };
    return { body: out, hideUsage };
  },

  output(json): OutputView {
    const texts: PromptText[] = [];
    const toolCalls: ToolCallRecord[] = [];
    const body = json && typeof json === "object" ? (json as Json) : {};
    for (const choice of Array.isArray(body.choices) ? (body.choices as Json[]) : []) {
      const message = choice?.message as Json | undefined;
      if (!message) continue;
      if (typeof message.content === "string") texts.push({ role: "assistant", text: message.content, replace: (t) => (message.content = t) });
      for (const call of Array.isArray(message.tool_calls) ? (message.tool_calls as Json[]) : []) {
        const fn = (call.function ?? {}) as Json;
        toolCalls.push({ id: String(call.id ?? ""), name: String(fn.name ?? "") });
        if (typeof fn.arguments === "string") texts.push({ role: "assistant", text: fn.arguments, replace: (t) => (fn.arguments = t) });
      }
    }
    return { texts, toolCalls, usage: openAiChatUsage(body.usage) };
  },

  observer(hideUsage): StreamObserver {
    let usage: Partial<Usage> | undefined;
    const calls = new Map<number, ToolCallRecord>();
    return {
      read(_event, data, raw): EventReading {
        if (data === "[DONE]") return {};
        const chunk = parseJson(data);
        if (!chunk) return {};
        if (chunk.usage) usage = openAiChatUsage(chunk.usage);
        const choices = Array.isArray(chunk.choices) ? (chunk.choices as Json[]) : [];
        const reading: EventReading = {};
        if (hideUsage) {
          // The usage chunk and the `"usage":null` on every other chunk exist only because the proxy asked.
          if (choices.length === 0 && chunk.usage) return { drop: true };
          const text = raw.toString("utf8");
          const at = text.lastIndexOf(USAGE_NULL);
          if (at >= 0 && text.slice(at + USAGE_NULL.length).trim() === "") reading.bytes = Buffer.from(`${text.slice(0, at)}}${text.slice(at + USAGE_NULL.length)}`);
        }
        const delta = choices[0]?.delta as Json | undefined;
        if (!delta) return reading;
        for (const call of Array.isArray(delta.tool_calls) ? (delta.tool_calls as Json[]) : []) {
          const index = num(call.index);
          const fn = (call.function ?? {}) as Json;
          const known = calls.get(index) ?? { id: "", name: "" };
          if (typeof call.id === "string") known.id = call.id;
          if (typeof fn.name === "string") known.name = fn.name;
          calls.set(index, known);
          if (typeof fn.arguments === "string") reading.text = (reading.text ?? "") + fn.arguments;
        }
        if (typeof delta.content === "string") {
          reading.text = (reading.text ?? "") + delta.content;
          reading.withText = (t) => {
            delta.content = t;
            if (hideUsage) delete chunk.usage;
            return Buffer.from(`data: ${JSON.stringify(chunk)}\n\n`);
          };
        }
        return reading;
      },
      usage: () => usage,
      toolCalls: () => [...calls.values()],
    };
  },
};
