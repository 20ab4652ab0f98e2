import { MandateError } from "../../errors/index.js";
import type { Endpoint, PromptText, ToolCallRecord, Usage } from "../types.js";

export type Json = Record<string, unknown>;

/** What the proxy needs to know about a request body; everything else passes through untouched. */
export interface RequestView {
  model: string;
  stream: boolean;
  /** the caller's cap on output tokens, if it set one */
  maxOutputTokens: number | undefined;
  /** every piece of prompt text, for guardrails, token estimates and the transcript */
  texts: PromptText[];
}

/** What one streamed event means to the proxy. */
export interface EventReading {
  /** model text carried by the event, for output guardrails and the transcript */
  text?: string;
  /** rebuilds the event with its text replaced (output redaction) */
  withText?: (text: string) => Buffer;
  /** the event was added only because the proxy asked for usage: the caller did not want it */
  drop?: boolean;
  /** the event's bytes without what the proxy added, when different */
  bytes?: Buffer;
}

export interface StreamObserver {
  read(event: string | undefined, data: string, raw: Buffer): EventReading;
  usage(): Partial<Usage> | undefined;
  toolCalls(): ToolCallRecord[];
}

export interface OutputView {
  texts: PromptText[];
  toolCalls: ToolCallRecord[];
  usage: Partial<Usage> | undefined;
}

/** One endpoint's wire format, request and response side. */
export interface Wire {
  endpoint: Endpoint;
  inspect(body: Json): RequestView;
  /**
   * The body to send upstream: the model replaced, and usage requested on streams when
   * the caller did not ask (then `hideUsage` tells the observer to remove what that added).
   */
  upstreamBody(body: Json, upstreamModel: string, options: { includeModel: boolean }): { body: Json; hideUsage: boolean };
  output(json: unknown): OutputView;
  observer(hideUsage: boolean): StreamObserver;
}

export function invalid(message: string, param?: string): MandateError {
  return new MandateError("MALFORMED_REQUEST", message, param ? { details: { param } } : undefined);
}

export function requireModel(body: Json): string {
  const model = body.model;
  if (typeof model !== "string" || model.length === 0 || model.length > 256) throw invalid("`model` must be a non-empty string naming a model this proxy serves (GET /llm/v1/models lists them)", "model");
  return model;
}

export function optionalPositiveInt(body: Json, ...fields: string[]): number | undefined {
  for (const field of fields) {
    const value = body[field];
    if (value === undefined || value === null) continue;
    if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) throw invalid(`\`${field}\` must be a positive integer`, field);
    return value;
  }
  return undefined;
}

export function streamFlag(body: Json): boolean {
  const stream = body.stream;
  if (stream !== undefined && stream !== null && typeof stream !== "boolean") throw invalid("`stream` must be a boolean", "stream");
  return stream === true;
}

/**
 * Text parts of an OpenAI- or Anthropic-style `content`: a string, or an array of
 * blocks with `text` (and, for Anthropic tool results, nested content). Each part can be
 * written back in place.
 */
export function contentTexts(holder: Json, key: string, role: string, out: PromptText[]): void {
  const value = holder[key];
  if (typeof value === "string") {
    out.push({ role, text: value, replace: (t) => (holder[key] = t) });
    return;
  }
  if (!Array.isArray(value)) return;
  for (const block of value) {
    if (typeof block === "string") continue;
    if (!block || typeof block !== "object") continue;
    const b = block as Json;
    const blockRole = b.type === "tool_result" || b.type === "function_call_output" ? "tool" : b.type === "document" ? "tool" : role;
    if (typeof b.text === "string") out.push({ role: blockRole, text: b.text, replace: (t) => (b.text = t) });
    if (b.content !== undefined) contentTexts(b, "content", blockRole, out);
    if (b.type === "document" && b.source && typeof b.source === "object") {
      const source = b.source as Json;
      if (source.type === "text" && typeof source.data === "string") out.push({ role: "tool", text: source.data, replace: (t) => (source.data = t) });
    }
  }
}

export function parseJson(data: string): Json | undefined {
  try {
    const value: unknown = JSON.parse(data);
    return value && typeof value === "object" ? (value as Json) : undefined;
  } catch {
    return undefined;
  }
}

export function num(value: unknown): number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? value : 0;
}

/** The body as the caller sent it, naming the provider's model id instead of the proxy's. */
export function withUpstreamModel(body: Json, upstreamModel: string): { body: Json; hideUsage: boolean } {
  return { body: { ...body, model: upstreamModel }, hideUsage: false };
}
