import type { PromptText, ToolCallRecord, Usage } from "../types.js";
import { withUpstreamModel, type EventReading, type Json, type OutputView, type StreamObserver, type Wire, contentTexts, invalid, num, optionalPositiveInt, parseJson, requireModel, streamFlag } from "./wire.js";

export function anthropicUsage(usage: unknown): Partial<Usage> | undefined {
  if (!usage || typeof usage !== "object") return undefined;
  const u = usage as Json;
  const cacheRead = num(u.cache_read_input_tokens);
  const cacheWrite = num(u.cache_creation_input_tokens);
  // Anthropic counts cache reads and writes apart from input_tokens; Usage.inputTokens is all of them.
  return { inputTokens: num(u.input_tokens) + cacheRead + cacheWrite, outputTokens: num(u.output_tokens), cachedInputTokens: cacheRead, cacheWriteTokens: cacheWrite, reasoningTokens: 0, estimated: false };
}

/** Anthropic's Messages API (`POST /v1/messages`). */
export const anthropicMessagesWire: Wire = {
  endpoint: "messages",

  inspect(body) {
    const model = requireModel(body);
    const messages = body.messages;
    if (!Array.isArray(messages) || messages.length === 0) throw invalid("messages: must be a non-empty array", "messages");
    const texts: PromptText[] = [];
    if (body.system !== undefined) contentTexts(body, "system", "system", texts);
    messages.forEach((message, i) => {
      if (!message || typeof message !== "object" || typeof (message as Json).role !== "string") throw invalid(`messages.${i}: must be an object with a string \`role\``, `messages.${i}`);
      const m = message as Json;
      contentTexts(m, "content", m.role as string, texts);
      for (const block of Array.isArray(m.content) ? (m.content as Json[]) : []) {
        if (block?.type === "tool_use" && block.input !== undefined) {
          const json = JSON.stringify(block.input);
          texts.push({ role: "assistant", text: json, replace: (t) => (block.input = parseJson(t) ?? {}) });
        }
      }
    });
    const maxTokens = optionalPositiveInt(body, "max_tokens");
    if (maxTokens === undefined) throw invalid("max_tokens: Field required", "max_tokens");
    return { model, stream: streamFlag(body), maxOutputTokens: maxTokens, texts };
  },

  upstreamBody: withUpstreamModel,

  output(json): OutputView {
    const texts: PromptText[] = [];
    const toolCalls: ToolCallRecord[] = [];
    const body = json && typeof json === "object" ? (json as Json) : {};
    for (const block of Array.isArray(body.content) ? (body.content as Json[]) : []) {
      if (block?.type === "text" && typeof block.text === "string") texts.push({ role: "assistant", text: block.text, replace: (t) => (block.text = t) });
      else if (block?.type === "tool_use") {
        toolCalls.push({ id: String(block.id ?? ""), name: String(block.name ?? "") });
        texts.push({ role: "assistant", text: JSON.stringify(block.input ?? {}), replace: (t) => (block.input = parseJson(t) ?? {}) });
      }
    }
    return { texts, toolCalls, usage: anthropicUsage(body.usage) };
  },

  observer(): StreamObserver {
    let usage: Partial<Usage> | undefined;
    const calls: ToolCallRecord[] = [];
    return {
      read(event, data): EventReading {
        if (event !== "message_start" && event !== "content_block_start" && event !== "content_block_delta" && event !== "message_delta") return {};
        const payload = parseJson(data);
        if (!payload) return {};
        if (event === "message_start") {
          usage = anthropicUsage((payload.message as Json | undefined)?.usage);
          return {};
        }
        if (event === "message_delta") {
          const u = payload.usage as Json | undefined;
          // message_delta carries the final output count (and, in newer versions, input counts too).
          if (u && (u.input_tokens !== undefined && u.input_tokens !== null || !usage)) usage = anthropicUsage(u);
          else if (u && usage) usage.outputTokens = num(u.output_tokens);
          return {};
        }
        if (event === "content_block_start") {
          const block = payload.content_block as Json | undefined;
          if (block?.type === "tool_use") calls.push({ id: String(block.id ?? ""), name: String(block.name ?? "") });
          return {};
        }
        const delta = payload.delta as Json | undefined;
        if (delta?.type === "text_delta" && typeof delta.text === "string") {
          return {
            text: delta.text,
            withText: (t) => {
              delta.text = t;
              return Buffer.from(`event: content_block_delta\ndata: ${JSON.stringify(payload)}\n\n`);
            },
          };
        }
        if (delta?.type === "input_json_delta" && typeof delta.partial_json === "string") return { text: delta.partial_json };
        return {};
      },
      usage: () => usage,
      toolCalls: () => calls,
    };
  },
};
