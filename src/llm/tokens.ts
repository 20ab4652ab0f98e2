import { hash } from "node:crypto";
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

/** How many message texts' counts are remembered (by digest: the texts themselves are not kept). */
const REMEMBERED = 4096;
const remembered = new Map<string, number>();

/**
 * countTextTokens of one prompt message, remembered: an agent resends its conversation's
 * earlier messages, and the same system prompt, with every turn, and tokenizing them
 * again is the costliest step before the request is sent. Keyed by SHA-256, so equal
 * digests are equal texts; the oldest entry goes first once the map is full.
 */
export function messageTokens(text: string): number {
  if (text.length === 0) return 0;
  const key = hash("sha256", text, "base64");
  const known = remembered.get(key);
  if (known !== undefined) return known;
  const count = countTextTokens(text);
  if (remembered.size >= REMEMBERED) remembered.delete(remembered.keys().next().value!);
  remembered.set(key, count);
  return count;
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
  if (chars <= TOKENIZE_UP_TO) return framing + texts.reduce((n, t) => n + messageTokens(t.text), 0);
  let bytes = 0;
  for (const t of texts) bytes += Buffer.byteLength(t.text);
  return framing + Math.ceil(bytes / 3);
}
