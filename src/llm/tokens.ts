import { countTokens } from "gpt-tokenizer";
import type { PromptText } from "./types.js";

/** Above this many characters the pre-request estimate stops tokenizing (too slow for the hot path). */
const TOKENIZE_UP_TO = 8_000;
/** Per-message framing tokens the chat formats add around each message. */
const PER_MESSAGE = 4;

/**
 * Token count of text with the o200k tokenizer (the GPT-4o/4.1 family's). Used after a
 * response when the provider reported no usage; other providers' tokenizers differ, so
 * such counts are marked as estimates.
 */
export function countTextTokens(text: string): number {
  if (text.length === 0) return 0;
  try {
    return countTokens(text);
  } catch {
    return Math.ceil(Buffer.byteLength(text) / 3);
  }
}

/**
 * The input estimate made before sending, used for token limits and budget
 * reservations and corrected once the provider reports usage. Short prompts are
 * tokenized; long ones are bounded by bytes/3, which is above the true count for
 * ordinary text and code, so a reservation errs on the side of not overspending.
 */
export function estimateInputTokens(texts: PromptText[]): number {
  let chars = 0;
  for (const t of texts) chars += t.text.length;
  const framing = PER_MESSAGE * texts.length;
  if (chars <= TOKENIZE_UP_TO) return framing + texts.reduce((n, t) => n + countTextTokens(t.text), 0);
  let bytes = 0;
  for (const t of texts) bytes += Buffer.byteLength(t.text);
  return framing + Math.ceil(bytes / 3);
}
