import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ProviderType } from "./config.js";
import { PriceTable, referenceCost } from "./prices.js";
import type { ResolvedTarget } from "./registry.js";

function target(type: ProviderType, upstreamModel: string): ResolvedTarget {
  const provider = { name: `p-${type}`, type, format: type === "anthropic" ? "anthropic" : "openai", baseUrl: "http://127.0.0.1:1", apiVersion: "", timeoutMs: 1000, streamIdleTimeoutMs: 1000, source: "config", apiKey: undefined } as const;
  return { id: `${provider.name}/${upstreamModel}`, provider, upstreamModel, weight: 1, timeoutMs: 1000, price: undefined };
}

// Flat entries (computed by PriceTable itself: with cache reads, with cache writes and
// one-hour cache writes, input only), tiered (long-context), time-of-day and start-date
// priced entries (left to calcPrice); a dated snapshot name matched through the table's
// date normalisation; one found by model name alone (openai-compatible); one the table
// does not know.
const TARGETS = [
  target("openai", "gpt-4.1-mini"),
  target("anthropic", "claude-haiku-4-5"),
  target("anthropic", "claude-3-5-haiku-latest"),
  target("openai", "text-embedding-3-small"),
  target("openai", "gpt-4.1-mini-2025-04-14"),
  target("openai", "gpt-4o-2024-08-06"),
  target("openai", "o3"),
  target("anthropic", "claude-sonnet-4-5"),
  target("azure", "gpt-4o"),
  target("openai-compatible", "deepseek-chat"),
  target("openai-compatible", "gemini-2.5-pro"),
  target("openai-compatible", "llama-3.3-70b-versatile"),
  target("openai", "no-such-model-anywhere"),
];

describe("PriceTable.cost", () => {
  it("prices every answer exactly as calcPrice over the whole table does", () => {
    const table = new PriceTable();
    const count = fc.oneof(fc.constant(0), fc.nat(50), fc.nat(400_000));
    // Mostly consistent usage; sometimes more cached than input tokens, which the table refuses to price.
    const usage = fc
      .record({ inputTokens: count, outputTokens: count, cachedInputTokens: count, cacheWriteTokens: count, reasoningTokens: count, estimated: fc.boolean(), consistent: fc.boolean() })
      .map(({ consistent, ...u }) => (consistent ? { ...u, cachedInputTokens: Math.min(u.cachedInputTokens, u.inputTokens), cacheWriteTokens: Math.min(u.cacheWriteTokens, u.inputTokens - Math.min(u.cachedInputTokens, u.inputTokens)) } : u));
    fc.assert(
      fc.property(fc.constantFrom(...TARGETS), usage, (t, u) => {
        expect(table.cost(t, u)).toEqual(referenceCost(t, u));
      }),
      { numRuns: 5000 },
    );
  });

  it("still tells priced from unpriced models", () => {
    const table = new PriceTable();
    const u = { inputTokens: 1000, outputTokens: 100, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, estimated: false };
    expect(table.cost(target("openai", "gpt-4.1-mini"), u)).toEqual({ nanoUsd: 560_000, unpriced: false });
    expect(table.cost(target("openai", "no-such-model-anywhere"), u)).toEqual({ nanoUsd: 0, unpriced: true });
  });
});
