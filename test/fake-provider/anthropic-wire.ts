import { countTokens } from "gpt-tokenizer";
import { type Answer, argumentPieces, decideAnswer, pieces, textOf } from "./openai-wire.js";
import type { FakeStep } from "./script.js";

/** Anthropic's Messages API as it is on the wire: the message object and the streamed event sequence. */
type Json = Record<string, unknown>;

export function messagesAnswer(body: Json, step: FakeStep, seq: number): { answer: Answer; inputTokens: number } {
  const messages = Array.isArray(body.messages) ? (body.messages as Json[]) : [];
  const last = messages[messages.length - 1];
  const lastUser = [...messages].reverse().find((m) => m.role === "user" && !isToolResultTurn(m));
  const tools = (Array.isArray(body.tools) ? (body.tools as Json[]) : []).map((t) => ({ name: String(t.name ?? "tool") }));
  const system = textOf(body.system);
  const prompt = `${system}\n${messages.map((m) => textOf(m.content)).join("\n")}`;
  const answer = decideAnswer(step, textOf(lastUser?.content), tools, last?.role === "user" && !isToolResultTurn(last), seq);
  if (answer.toolCall) answer.toolCall.id = `toolu_fake${String(seq).padStart(6, "0")}`;
  return { answer, inputTokens: countTokens(prompt) + 4 };
}

function isToolResultTurn(message: Json): boolean {
  return Array.isArray(message.content) && (message.content as Json[]).some((b) => b.type === "tool_result");
}

function usage(inputTokens: number, outputTokens: number, step: FakeStep): Json {
  return { input_tokens: inputTokens, cache_creation_input_tokens: 0, cache_read_input_tokens: step.cachedTokens ?? 0, output_tokens: outputTokens, service_tier: "standard" };
}

function outputTokens(answer: Answer): number {
  return countTokens(answer.toolCall ? answer.toolCall.arguments : answer.text) + 1;
}

export function message(model: string, id: string, answer: Answer, inputTokens: number, step: FakeStep): Json {
  const content = answer.toolCall ? [{ type: "tool_use", id: answer.toolCall.id, name: answer.toolCall.name, input: JSON.parse(answer.toolCall.arguments) }] : [{ type: "text", text: answer.text }];
  return { id, type: "message", role: "assistant", model, content, stop_reason: answer.toolCall ? "tool_use" : "end_turn", stop_sequence: null, usage: usage(inputTokens, outputTokens(answer), step) };
}

export function messageEvents(model: string, id: string, answer: Answer, inputTokens: number, step: FakeStep): [string, string][] {
  const events: [string, Json][] = [];
  events.push(["message_start", { type: "message_start", message: { id, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage: usage(inputTokens, 1, step) } }]);
  if (answer.toolCall) {
    events.push(["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "tool_use", id: answer.toolCall.id, name: answer.toolCall.name, input: {} } }]);
    events.push(["ping", { type: "ping" }]);
    for (const part of argumentPieces(answer.toolCall.arguments)) events.push(["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "input_json_delta", partial_json: part } }]);
  } else {
    events.push(["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }]);
    events.push(["ping", { type: "ping" }]);
    for (const part of pieces(answer.text)) events.push(["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: part } }]);
  }
  events.push(["content_block_stop", { type: "content_block_stop", index: 0 }]);
  events.push(["message_delta", { type: "message_delta", delta: { stop_reason: answer.toolCall ? "tool_use" : "end_turn", stop_sequence: null }, usage: { output_tokens: outputTokens(answer) } }]);
  events.push(["message_stop", { type: "message_stop" }]);
  return events.map(([type, data]) => [type, JSON.stringify(data)]);
}

export function anthropicError(status: number): Json {
  const [type, message] =
    status === 401
      ? ["authentication_error", "invalid x-api-key"]
      : status === 429
        ? ["rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"]
        : status === 529
          ? ["overloaded_error", "Overloaded"]
          : status === 400
            ? ["invalid_request_error", "messages: field required"]
            : ["api_error", "Internal server error"];
  return { type: "error", error: { type, message }, request_id: "req_fake" };
}
