import { type ModelPrice, type PriceOptions, calcPrice } from "@pydantic/genai-prices";
import type { PriceOverride } from "./config.js";
import type { ResolvedTarget } from "./registry.js";
import type { Usage } from "./types.js";

/** Dollars are kept as integer billionths so that sums are exact in SQL and in Redis. */
export const NANO = 1e9;

export interface Cost {
  nanoUsd: number;
  /** no price is known for this model: spend is not counted against budgets */
  unpriced: boolean;
}

interface Rates {
  input: number;
  output: number;
  cachedInput: number;
  cacheWrite: number;
  reasoning: number;
}

const GENAI_PROVIDER: Record<string, string | undefined> = { openai: "openai", azure: "azure", anthropic: "anthropic", "openai-compatible": undefined };

/** The highest tier of a tiered price, so that estimates err high. */
function topRate(value: ModelPrice[string]): number {
  if (typeof value === "number") return value;
  if (value && typeof value === "object") return Math.max(value.base, ...value.tiers.map((t) => t.price));
  return 0;
}

/**
 * Prices from the maintained `@pydantic/genai-prices` table (bundled, no network),
 * overridden per model or target in the configuration. Cached-input and cache-write
 * tokens are priced at their own rates; reasoning tokens are output tokens and priced
 * as output unless an override gives them a rate of their own.
 */
export class PriceTable {
  private readonly rates = new Map<string, Rates | null>();
  private readonly pinned = new Map<string, { options: PriceOptions; flat: FlatPrice | undefined } | null>();

  /**
   * The table's provider for this target narrowed to the one model entry that prices it.
   * Finding the entry is most of calcPrice's work — every model of the provider matched
   * in turn, some by building a RegExp — and its answer for one upstream model never
   * changes; the price itself is still computed by calcPrice at each call, so a price
   * that depends on the date or the time of day is still the one in force.
   */
  private pinnedFor(target: ResolvedTarget): { options: PriceOptions; flat: FlatPrice | undefined } | null {
    const cached = this.pinned.get(target.id);
    if (cached !== undefined) return cached;
    const found = lookup(target.upstreamModel, target.provider.type);
    const pinned = found ? { options: { provider: { ...found.provider, models: [found.model], fallback_model_providers: undefined } }, flat: flatPrice(found.model.prices) } : null;
    this.pinned.set(target.id, pinned);
    return pinned;
  }

  private ratesFor(target: ResolvedTarget): Rates | null {
    const cached = this.rates.get(target.id);
    if (cached !== undefined) return cached;
    let rates: Rates | null = null;
    if (target.price) rates = fromOverride(target.price);
    else {
      const found = lookup(target.upstreamModel, target.provider.type);
      if (found) {
        const mp = found.model_price;
        rates = {
          input: topRate(mp.input_mtok),
          output: topRate(mp.output_mtok),
          cachedInput: topRate(mp.cache_read_mtok ?? mp.input_mtok),
          cacheWrite: topRate(mp.cache_write_mtok ?? mp.input_mtok),
          reasoning: topRate(mp.output_mtok),
        };
      }
    }
    this.rates.set(target.id, rates);
    return rates;
  }

  /** An upper estimate before sending: every input token at the full input rate, the output cap at the output rate. */
  estimate(target: ResolvedTarget, inputTokens: number, outputTokens: number): Cost {
    const rates = this.ratesFor(target);
    if (!rates) return { nanoUsd: 0, unpriced: true };
    return { nanoUsd: Math.ceil((inputTokens * rates.input + outputTokens * Math.max(rates.output, rates.reasoning)) * (NANO / 1e6)), unpriced: false };
  }

  cost(target: ResolvedTarget, usage: Usage): Cost {
    if (target.price) {
      const r = fromOverride(target.price);
      const uncached = Math.max(0, usage.inputTokens - usage.cachedInputTokens - usage.cacheWriteTokens);
      const reasoning = Math.min(usage.reasoningTokens, usage.outputTokens);
      const dollars = (uncached * r.input + usage.cachedInputTokens * r.cachedInput + usage.cacheWriteTokens * r.cacheWrite + (usage.outputTokens - reasoning) * r.output + reasoning * r.reasoning) / 1e6;
      return { nanoUsd: Math.round(dollars * NANO), unpriced: false };
    }
    const pinned = this.pinnedFor(target);
    if (!pinned) return { nanoUsd: 0, unpriced: true };
    if (pinned.flat && countable(usage)) {
      const total = flatTotal(pinned.flat, usage);
      return total === undefined ? { nanoUsd: 0, unpriced: true } : { nanoUsd: Math.round(total * NANO), unpriced: false };
    }
    let result: ReturnType<typeof calcPrice>;
    try {
      result = calcPrice(genaiUsage(usage), target.upstreamModel, pinned.options);
    } catch {
      result = null;
    }
    if (!result) return { nanoUsd: 0, unpriced: true };
    return { nanoUsd: Math.round(result.total_price * NANO), unpriced: false };
  }
}

/**
 * A model entry priced by fixed per-token (and per-search) rates, with no tiers and no
 * date or time-of-day conditions — most of the table. Its total is computed here with
 * the same arithmetic, in the same order, as genai-prices' unit calculation (each
 * price × its leaf count ÷ the unit's size, summed by direction, input + output + other),
 * which costs a fraction of a microsecond instead of the library's generic unit-tree
 * walk; every other entry goes to calcPrice. The property test holds the two equal.
 */
type FlatPrice = { price: number; per: number; direction: "input" | "output" | "other"; leaf: "input" | "cacheRead" | "cacheWrite" | "output" | "none" }[];

/** The units a flat entry may use, as genai-prices defines them; a search count is never reported by a chat answer, so it adds nothing. */
const FLAT_UNITS: Record<string, Omit<FlatPrice[number], "price">> = {
  input_mtok: { per: 1e6, direction: "input", leaf: "input" },
  cache_read_mtok: { per: 1e6, direction: "input", leaf: "cacheRead" },
  cache_write_mtok: { per: 1e6, direction: "input", leaf: "cacheWrite" },
  cache_write_1h_mtok: { per: 1e6, direction: "input", leaf: "none" },
  output_mtok: { per: 1e6, direction: "output", leaf: "output" },
  web_searches_kcount: { per: 1e3, direction: "other", leaf: "none" },
  storage_searches_kcount: { per: 1e3, direction: "other", leaf: "none" },
};

function flatPrice(prices: unknown): FlatPrice | undefined {
  if (!prices || typeof prices !== "object" || Array.isArray(prices)) return undefined;
  const out: FlatPrice = [];
  for (const [key, price] of Object.entries(prices as Record<string, unknown>)) {
    if (price === undefined) continue;
    const unit = FLAT_UNITS[key];
    if (!unit || typeof price !== "number" || !Number.isFinite(price) || price < 0) return undefined;
    out.push({ price, ...unit });
  }
  return out.some((p) => p.leaf === "input") && out.some((p) => p.leaf === "output") ? out : undefined;
}

function countable(usage: Usage): boolean {
  return [usage.inputTokens, usage.outputTokens, usage.cachedInputTokens, usage.cacheWriteTokens].every((n) => Number.isSafeInteger(n) && n >= 0);
}

/** undefined where genai-prices refuses the usage (more cached tokens than input tokens). */
function flatTotal(flat: FlatPrice, usage: Usage): number | undefined {
  // Cache reads and writes are the part of the input priced at their own rate, when the entry has one.
  const cacheRead = flat.some((p) => p.leaf === "cacheRead") ? usage.cachedInputTokens : 0;
  const cacheWrite = flat.some((p) => p.leaf === "cacheWrite") ? usage.cacheWriteTokens : 0;
  const uncached = usage.inputTokens - cacheRead - cacheWrite;
  if (uncached < 0) return undefined;
  const leaves = { input: uncached, cacheRead, cacheWrite, output: usage.outputTokens, none: 0 };
  let input = 0;
  let output = 0;
  let other = 0;
  for (const p of flat) {
    const amount = (p.price * leaves[p.leaf]) / p.per;
    if (p.direction === "input") input += amount;
    else if (p.direction === "output") output += amount;
    else other += amount;
  }
  return input + output + other;
}

/** Usage as genai-prices names it; zero cache counts are left out, as the table expects. */
export function genaiUsage(usage: Usage): Record<string, number | undefined> {
  return { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens, cache_read_tokens: usage.cachedInputTokens || undefined, cache_write_tokens: usage.cacheWriteTokens || undefined };
}

/** The price of one answer straight from the whole table, as calcPrice is documented to be called: the reference the pinned lookup must agree with. */
export function referenceCost(target: ResolvedTarget, usage: Usage): Cost {
  const result = safeCalc(genaiUsage(usage), target.upstreamModel, GENAI_PROVIDER[target.provider.type]);
  if (!result) return { nanoUsd: 0, unpriced: true };
  return { nanoUsd: Math.round(result.total_price * NANO), unpriced: false };
}

function fromOverride(p: PriceOverride): Rates {
  return { input: p.inputPerMTok, output: p.outputPerMTok, cachedInput: p.cachedInputPerMTok ?? p.inputPerMTok, cacheWrite: p.cacheWritePerMTok ?? p.inputPerMTok, reasoning: p.reasoningPerMTok ?? p.outputPerMTok };
}

function lookup(model: string, type: string): ReturnType<typeof calcPrice> {
  return safeCalc({ input_tokens: 1, output_tokens: 1 }, model, GENAI_PROVIDER[type]);
}

function safeCalc(usage: Record<string, number | undefined>, model: string, providerId: string | undefined): ReturnType<typeof calcPrice> {
  try {
    return calcPrice(usage, model, providerId ? { providerId } : undefined) ?? (providerId ? calcPrice(usage, model) : null);
  } catch {
    return null;
  }
}
