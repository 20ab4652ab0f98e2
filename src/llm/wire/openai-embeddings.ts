import type { PromptText } from "../types.js";
import { withUpstreamModel, type Json, type OutputView, type StreamObserver, type Wire, invalid, num, requireModel } from "./wire.js";

/** OpenAI embeddings: strings (or token arrays) in, vectors out; never streamed. */
export const openAiEmbeddingsWire: Wire = {
  endpoint: "embeddings",

  inspect(body) {
    const model = requireModel(body);
    const input = body.input;
    const texts: PromptText[] = [];
    if (typeof input === "string") texts.push({ role: "user", text: input, replace: (t) => (body.input = t) });
    else if (Array.isArray(input) && input.length > 0) {
      input.forEach((item, i) => {
        if (typeof item === "string") texts.push({ role: "user", text: item, replace: (t) => ((input as unknown[])[i] = t) });
        else if (!Array.isArray(item) && typeof item !== "number") throw invalid("`input` items must be strings or token arrays", "input");
      });
    } else throw invalid("`input` must be a string or a non-empty array", "input");
    if (body.stream !== undefined) throw invalid("embeddings are not streamed; remove `stream`", "stream");
    return { model, stream: false, maxOutputTokens: 0, texts };
  },

  upstreamBody: withUpstreamModel,

  output(json): OutputView {
    const usage = json && typeof json === "object" ? ((json as Json).usage as Json | undefined) : undefined;
    return { texts: [], toolCalls: [], usage: usage ? { inputTokens: num(usage.prompt_tokens), outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, estimated: false } : undefined };
  },

  observer(): StreamObserver {
    return { read: () => ({}), usage: () => undefined, toolCalls: () => [] };
  },
};
