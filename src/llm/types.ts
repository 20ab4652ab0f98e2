/** The endpoints the proxy serves, each with its provider wire format. */
export type Endpoint = "chat" | "responses" | "embeddings" | "messages";
export type WireFormat = "openai" | "anthropic";

export const ENDPOINT_FORMAT: Record<Endpoint, WireFormat> = { chat: "openai", responses: "openai", embeddings: "openai", messages: "anthropic" };
export const ENDPOINT_ACTION: Record<Endpoint, string> = { chat: "llm.chat", responses: "llm.responses", embeddings: "llm.embeddings", messages: "llm.chat" };

/** Token counts as the provider reported them (or as estimated when it did not). */
export interface Usage {
  /** every input token, cached ones included */
  inputTokens: number;
  /** every output token, reasoning ones included */
  outputTokens: number;
  cachedInputTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
  /** true when counted with the tokenizer because the provider reported none */
  estimated: boolean;
}

export const NO_USAGE: Usage = { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, estimated: true };

/** One piece of prompt text with where it came from, so guardrails can judge by role and redact in place. */
export interface PromptText {
  role: string;
  text: string;
  /** writes a replacement back into the request body */
  replace(text: string): void;
}

/** A tool call the model asked for, recorded so the call that follows can be matched to it. */
export interface ToolCallRecord {
  id: string;
  name: string;
}
