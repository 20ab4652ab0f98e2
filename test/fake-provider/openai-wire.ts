import { countTokens } from "gpt-tokenizer";
import type { FakeStep } from "./script.js";

/**
 * The OpenAI wire format as the real API emits it (field order included, since tests
 * compare bytes): chat completions, responses, embeddings and models, streaming and not.
 */
export const FAKE_CREATED = 1767225600;

export interface Answer {
  text: string;
  toolCall?: { id: string; name: string; arguments: string } | undefined;
}

type Json = Record<string, unknown>;

export function textOf(value: unknown): string {
  if (typeof value === "string") return value;
  if (Array.isArray(value)) return value.map(textOf).join(" ");
  if (value && typeof value === "object") {
    const v = value as Json;
    if (typeof v.text === "string") return v.text;
    if (v.content !== undefined) return textOf(v.content);
    if (typeof v.output === "string") return v.output;
  }
  return "";
}

/** Pieces a streamed answer arrives in: words with their leading space, like tokens. */
export function pieces(text: string): string[] {
  return text.match(/\s*\S+/g) ?? [text];
}

export function decideAnswer(step: FakeStep, lastUserText: string, tools: { name: string }[], lastIsUser: boolean, seq: number): Answer {
  const wantsTool = step.toolCall !== false && (step.toolCall !== undefined || (tools.length > 0 && lastIsUser));
  if (wantsTool) {
    const name = step.toolCall ? step.toolCall.name : tools[0]!.name;
    const args = step.toolCall ? step.toolCall.arguments : { query: lastUserText.slice(0, 60) };
    return { text: "", toolCall: { id: `call_fake${String(seq).padStart(6, "0")}`, name, arguments: JSON.stringify(args) } };
  }
  return { text: step.reply ?? `Echo: ${lastUserText.slice(0, 200)}` };
}

function chatTools(body: Json): { name: string }[] {
  const tools = Array.isArray(body.tools) ? (body.tools as Json[]) : [];
  return tools.map((t) => ({ name: String((t.function as Json | undefined)?.name ?? t.name ?? "tool") }));
}

export function chatAnswer(body: Json, step: FakeStep, seq: number): { answer: Answer; promptTokens: number } {
  const messages = Array.isArray(body.messages) ? (body.messages as Json[]) : [];
  const last = messages[messages.length - 1];
  const lastUser = [...messages].reverse().find((m) => m.role === "user");
  const prompt = messages.map((m) => textOf(m.content)).join("\n");
  return { answer: decideAnswer(step, textOf(lastUser?.content), chatTools(body), last?.role === "user", seq), promptTokens: countTokens(prompt) + 3 * messages.length };
}

function chatUsage(promptTokens: number, completionTokens: number, step: FakeStep): Json {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: step.cachedTokens ?? 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: step.reasoningTokens ?? 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function completionTokens(answer: Answer, step: FakeStep): number {
  return countTokens(answer.toolCall ? answer.toolCall.arguments : answer.text) + (step.reasoningTokens ?? 0);
}

export function chatCompletion(model: string, id: string, answer: Answer, promptTokens: number, step: FakeStep): Json {
  const message: Json = answer.toolCall
    ? { role: "assistant", content: null, tool_calls: [{ id: answer.toolCall.id, type: "function", function: { name: answer.toolCall.name, arguments: answer.toolCall.arguments } }], refusal: null, annotations: [] }
    : { role: "assistant", content: answer.text, refusal: null, annotations: [] };
  return {
    id,
    object: "chat.completion",
    created: FAKE_CREATED,
    model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: answer.toolCall ? "tool_calls" : "stop" }],
    ...(step.noUsage ? {} : { usage: chatUsage(promptTokens, completionTokens(answer, step), step) }),
    service_tier: "default",
    system_fingerprint: "fp_fake0001",
  };
}

/** The chunk sequence of a streamed chat completion, each as the JSON text of one `data:` line. */
export function chatChunks(model: string, id: string, answer: Answer, promptTokens: number, step: FakeStep, includeUsage: boolean): string[] {
  const chunk = (delta: Json, finish: string | null): string =>
    JSON.stringify({
      id,
      object: "chat.completion.chunk",
      created: FAKE_CREATED,
      model,
      service_tier: "default",
      system_fingerprint: "fp_fake0001",
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      ...(includeUsage ? { usage: null } : {}),
    });
  const out: string[] = [];
  if (answer.toolCall) {
    out.push(chunk({ role: "assistant", content: null, tool_calls: [{ index: 0, id: answer.toolCall.id, type: "function", function: { name: answer.toolCall.name, arguments: "" } }], refusal: null }, null));
    for (const part of argumentPieces(answer.toolCall.arguments)) out.push(chunk({ tool_calls: [{ index: 0, function: { arguments: part } }] }, null));
    out.push(chunk({}, "tool_calls"));
  } else {
    out.push(chunk({ role: "assistant", content: "", refusal: null }, null));
    for (const part of pieces(answer.text)) out.push(chunk({ content: part }, null));
    out.push(chunk({}, "stop"));
  }
  if (includeUsage && !step.noUsage) {
    out.push(JSON.stringify({ id, object: "chat.completion.chunk", created: FAKE_CREATED, model, service_tier: "default", system_fingerprint: "fp_fake0001", choices: [], usage: chatUsage(promptTokens, completionTokens(answer, step), step) }));
  }
  return out;
}

export function argumentPieces(args: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i += 7) out.push(args.slice(i, i + 7));
  return out.length ? out : [""];
}

// ---- Responses API ----

function responsesInputText(body: Json): { lastUser: string; all: string; lastIsUser: boolean } {
  const input = body.input;
  if (typeof input === "string") return { lastUser: input, all: input, lastIsUser: true };
  const items = Array.isArray(input) ? (input as Json[]) : [];
  const users = items.filter((i) => i.role === "user");
  const last = items[items.length - 1];
  return { lastUser: textOf(users[users.length - 1]?.content), all: items.map((i) => textOf(i.content ?? i.output)).join("\n"), lastIsUser: last?.role === "user" };
}

export function responsesAnswer(body: Json, step: FakeStep, seq: number): { answer: Answer; inputTokens: number } {
  const { lastUser, all, lastIsUser } = responsesInputText(body);
  const tools = (Array.isArray(body.tools) ? (body.tools as Json[]) : []).map((t) => ({ name: String(t.name ?? "tool") }));
  const instructions = typeof body.instructions === "string" ? body.instructions : "";
  return { answer: decideAnswer(step, lastUser, tools, lastIsUser, seq), inputTokens: countTokens(`${instructions}\n${all}`) };
}

function responseUsage(inputTokens: number, outputTokens: number, step: FakeStep): Json {
  return {
    input_tokens: inputTokens,
    input_tokens_details: { cached_tokens: step.cachedTokens ?? 0 },
    output_tokens: outputTokens,
    output_tokens_details: { reasoning_tokens: step.reasoningTokens ?? 0 },
    total_tokens: inputTokens + outputTokens,
  };
}

function outputItem(answer: Answer, seq: number, status: "in_progress" | "completed"): Json {
  const suffix = String(seq).padStart(6, "0");
  if (answer.toolCall) {
    return { id: `fc_fake${suffix}`, type: "function_call", status, arguments: status === "completed" ? answer.toolCall.arguments : "", call_id: answer.toolCall.id, name: answer.toolCall.name };
  }
  return { id: `msg_fake${suffix}`, type: "message", status, content: status === "completed" ? [{ type: "output_text", annotations: [], logprobs: [], text: answer.text }] : [], role: "assistant" };
}

export function responseObject(body: Json, model: string, id: string, answer: Answer, inputTokens: number, step: FakeStep, seq: number, status: "in_progress" | "completed"): Json {
  const done = status === "completed";
  return {
    id,
    object: "response",
    created_at: FAKE_CREATED,
    status,
    background: false,
    error: null,
    incomplete_details: null,
    instructions: typeof body.instructions === "string" ? body.instructions : null,
    max_output_tokens: typeof body.max_output_tokens === "number" ? body.max_output_tokens : null,
    model,
    output: done ? [outputItem(answer, seq, "completed")] : [],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    service_tier: "default",
    store: true,
    temperature: 1.0,
    text: { format: { type: "text" }, verbosity: "medium" },
    tool_choice: "auto",
    tools: Array.isArray(body.tools) ? body.tools : [],
    top_p: 1.0,
    truncation: "disabled",
    usage: done && !step.noUsage ? responseUsage(inputTokens, completionTokens(answer, step), step) : null,
    user: null,
    metadata: {},
  };
}

/** The streamed event sequence of a response: [event type, data JSON]. */
export function responseEvents(body: Json, model: string, id: string, answer: Answer, inputTokens: number, step: FakeStep, seq: number): [string, string][] {
  const events: [string, Json][] = [];
  const started = responseObject(body, model, id, answer, inputTokens, step, seq, "in_progress");
  events.push(["response.created", { type: "response.created", response: started }]);
  events.push(["response.in_progress", { type: "response.in_progress", response: started }]);
  const item = outputItem(answer, seq, "in_progress");
  events.push(["response.output_item.added", { type: "response.output_item.added", output_index: 0, item }]);
  if (answer.toolCall) {
    for (const part of argumentPieces(answer.toolCall.arguments)) {
      events.push(["response.function_call_arguments.delta", { type: "response.function_call_arguments.delta", item_id: item.id, output_index: 0, delta: part }]);
    }
    events.push(["response.function_call_arguments.done", { type: "response.function_call_arguments.done", item_id: item.id, output_index: 0, arguments: answer.toolCall.arguments }]);
  } else {
    events.push(["response.content_part.added", { type: "response.content_part.added", item_id: item.id, output_index: 0, content_index: 0, part: { type: "output_text", annotations: [], logprobs: [], text: "" } }]);
    for (const part of pieces(answer.text)) {
      events.push(["response.output_text.delta", { type: "response.output_text.delta", item_id: item.id, output_index: 0, content_index: 0, delta: part, logprobs: [] }]);
    }
    events.push(["response.output_text.done", { type: "response.output_text.done", item_id: item.id, output_index: 0, content_index: 0, text: answer.text, logprobs: [] }]);
    events.push(["response.content_part.done", { type: "response.content_part.done", item_id: item.id, output_index: 0, content_index: 0, part: { type: "output_text", annotations: [], logprobs: [], text: answer.text } }]);
  }
  events.push(["response.output_item.done", { type: "response.output_item.done", output_index: 0, item: outputItem(answer, seq, "completed") }]);
  events.push(["response.completed", { type: "response.completed", response: responseObject(body, model, id, answer, inputTokens, step, seq, "completed") }]);
  // Every event carries its position, as the real API's do.
  return events.map(([type, data], i) => [type, JSON.stringify({ ...data, sequence_number: i })]);
}

// ---- Embeddings and models ----

export function embeddingsResponse(body: Json, model: string, step: FakeStep): Json {
  const inputs = Array.isArray(body.input) ? (body.input as unknown[]) : [body.input];
  const base64 = body.encoding_format === "base64";
  const dims = typeof body.dimensions === "number" ? body.dimensions : 8;
  const data = inputs.map((input, index) => {
    const text = typeof input === "string" ? input : JSON.stringify(input);
    const vector = Array.from({ length: dims }, (_, i) => Math.round(Math.sin(text.length + i) * 1e6) / 1e6);
    return { object: "embedding", index, embedding: base64 ? Buffer.from(new Float32Array(vector).buffer).toString("base64") : vector };
  });
  const tokens = inputs.reduce<number>((n, input) => n + (typeof input === "string" ? countTokens(input) : Array.isArray(input) ? input.length : 0), 0);
  return { object: "list", data, model, ...(step.noUsage ? {} : { usage: { prompt_tokens: tokens, total_tokens: tokens } }) };
}

export function modelsList(models: string[]): Json {
  return { object: "list", data: models.map((id) => ({ id, object: "model", created: FAKE_CREATED, owned_by: "system" })) };
}

export function openAiError(status: number): Json {
  switch (status) {
    case 401:
      return { error: { message: "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.", type: "invalid_request_error", param: null, code: "invalid_api_key" } };
    case 404:
      return { error: { message: "The model does not exist or you do not have access to it.", type: "invalid_request_error", param: null, code: "model_not_found" } };
    case 429:
      return { error: { message: "Rate limit reached for requests. Please try again later.", type: "requests", param: null, code: "rate_limit_exceeded" } };
    case 400:
      return { error: { message: "We could not parse the JSON body of your request.", type: "invalid_request_error", param: null, code: null } };
    default:
      return { error: { message: "The server had an error while processing your request. Sorry about that!", type: "server_error", param: null, code: null } };
  }
}
