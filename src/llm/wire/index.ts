import type { Endpoint } from "../types.js";
import { anthropicMessagesWire } from "./anthropic-messages.js";
import { openAiChatWire } from "./openai-chat.js";
import { openAiEmbeddingsWire } from "./openai-embeddings.js";
import { openAiResponsesWire } from "./openai-responses.js";
import type { Wire } from "./wire.js";

export const WIRES: Record<Endpoint, Wire> = { chat: openAiChatWire, responses: openAiResponsesWire, embeddings: openAiEmbeddingsWire, messages: anthropicMessagesWire };
export type { EventReading, Json, OutputView, RequestView, StreamObserver, Wire } from "./wire.js";
export { errorBody, errorEvent } from "./errors.js";
