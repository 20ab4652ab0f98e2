import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { countTextTokens, estimateInputTokens, messageTokens } from "./tokens.js";

describe("token estimates", () => {
  it("a remembered message count is the tokenizer's count, for new, repeated and evicted texts", () => {
    // A small pool makes repeats common; enough distinct texts overall to go through the map more than once.
    const pooled = fc.constantFrom("", "hi", "What is the status of the checkout deploy?", "[system] You are a careful SRE.", "ünïcödé ✓ 日本語", "a".repeat(500));
    const text = fc.oneof(pooled, fc.string({ maxLength: 80 }), fc.string({ unit: "grapheme", maxLength: 40 }));
    fc.assert(
      fc.property(fc.array(text, { maxLength: 8 }), (texts) => {
        for (const t of texts) expect(messageTokens(t)).toBe(countTextTokens(t));
        const prompt = texts.map((t) => ({ role: "user", text: t, replace: () => undefined }));
        expect(estimateInputTokens(prompt)).toBe(4 * texts.length + texts.reduce((n, t) => n + countTextTokens(t), 0));
      }),
      { numRuns: 1500 },
    );
  });
});
