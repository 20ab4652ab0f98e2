import type { PromptText, ToolCallRecord, Usage } from "../types.js";
import { withUpstreamModel, type EventReading, type Json, type OutputView, type StreamObserver, type Wire, contentTexts, invalid, num, optionalPositiveInt, parseJson, requireModel, streamFlag } from "./wire.js";

export function responsesUsage(usage: unknown): Partial<Usage> | undefined {
  if (!usage || typeof usage !== "object") return undefined;
  const u = usage as Json;
  const input = (u.input_tokens_details ?? {}) as Json;
  const output = (u.output_tokens_details ?? {}) as Json;
  return { inputTokens: num(u.input_tokens), outputTokens: num(u.output_tokens), cachedInputTokens: num(input.cached_tokens), reasoningTokens: num(output.reasoning_tokens), cacheWriteTokens: 0, estimated: false };
}

function outputItems(response: Json, texts: PromptText[], toolCalls: ToolCallRecord[]): void {
  for (const item of Array.isArray(response.output) ? (response.output as Json[]) : []) {
    if (item?.type === "message") {
      for (const part of Array.isArray(item.content) ? (item.content as Json[]) : []) {
        if (typeof part.text === "string") texts.push({ role: "assistant", text: part.text, replace: (t) => (part.text = t) });
      }
    } else if (item?.type === "function_call") {
      toolCalls.push({ id: String(item.call_id ?? item.id ?? ""), name: String(item.name ?? "") });
      if (typeof item.arguments === "string") texts.push({ role: "assistant", text: item.arguments, replace: (t) => (item.arguments = t) });
    }
  }
}

/** OpenAI's Responses API (`POST /v1/responses`). */
export const openAiResponsesWire: Wire = {
  endpoint: "responses",

  inspect(body) {
    const model = requireModel(body);
    const texts: PromptText[] = [];
    if (typeof body.instructions === "string") texts.push({ role: "system", text: body.instructions, replace: (t) => (body.instructions = t) });
    const input = body.input;
    if (typeof input === "string") texts.push({ role: "user", text: input, replace: (t) => (body.input = t) });
    else if (Array.isArray(input)) {
      for (const item of input) {
        if (!item || typeof item !== "object") throw invalid("every `input` item must be an object", "input");
        const i = item as Json;
        if (i.type === "function_call_output") {
          if (typeof i.output === "string") texts.push({ role: "tool", text: i.output, replace: (t) => (i.output = t) });
          else contentTexts(i, "output", "tool", texts);
        } else if (i.type === "function_call") {
          if (typeof i.arguments === "string") texts.push({ role: "assistant", text: i.arguments, replace: (t) => (i.arguments = t) });
        } else contentTexts(i, "content", typeof i.role === "string" ? i.role : "user", texts);
      }
    } else if (input !== undefined) throw invalid("`input` must be a string or an array of input items", "input");
    return { model, stream: streamFlag(body), maxOutputTokens: optionalPositiveInt(body, "max_output_tokens"), texts };
  },

  upstreamBody: withUpstreamModel,

  output(json): OutputView {
    const texts: PromptText[] = [];
    const toolCalls: ToolCallRecord[] = [];
    const body = json && typeof json === "object" ? (json as Json) : {};
    outputItems(body, texts, toolCalls);
    return { texts, toolCalls, usage: responsesUsage(body.usage) };
  },

  observer(): StreamObserver {
    let usage: Partial<Usage> | undefined;
    const calls = new Map<string, ToolCallRecord>();
    return {
      read(event, data): EventReading {
        const type = event ?? "";
        if (type !== "response.output_text.delta" && type !== "response.function_call_arguments.delta" && type !== "response.output_item.added" && !type.startsWith("response.completed") && type !== "response.incomplete" && type !== "response.failed") return {};
        const payload = parseJson(data);
        if (!payload) return {};
        if (type === "response.output_text.delta" && typeof payload.delta === "string") {
          return {
            text: payload.delta,
            withText: (t) => {
              payload.delta = t;
              return Buffer.from(`event: ${type}\ndata: ${JSON.stringify(payload)}\n\n`);
            },
          };
        }
        if (type === "response.function_call_arguments.delta") return typeof payload.delta === "string" ? { text: payload.delta } : {};
        if (type === "response.output_item.added") {
          const item = payload.item as Json | undefined;
          if (item?.type === "function_call") calls.set(String(item.id), { id: String(item.call_id ?? item.id), name: String(item.name ?? "") });
          return {};
        }
        const response = payload.response as Json | undefined;
        if (response?.usage) usage = responsesUsage(response.usage);
        return {};
      },
      usage: () => usage,
      toolCalls: () => [...calls.values()],
    };
  },
};
