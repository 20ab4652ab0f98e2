import type { Redis } from "ioredis";
import { type RateLimiterAbstract, RateLimiterMemory, RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { MandateError } from "../errors/index.js";
import type { LimitConfig, LimitScope } from "./config.js";

/** Who a request is charged to, for limits and budgets. */
export interface Subject {
  agent?: string | undefined;
  team?: string | undefined;
  delegation?: string | undefined;
  model: string;
}

interface Rule {
  scope: LimitScope;
  name: string | undefined;
  kind: "rpm" | "tpm";
  limit: number;
  limiter: RateLimiterAbstract;
}

interface Charge {
  rule: Rule;
  key: string;
  points: number;
  windowEndsAt: number;
}

/** What a request holds after passing the limits; `settle` corrects the token estimate once usage is known. */
export interface LimitLease {
  settle(actualTokens: number): void;
}

const WINDOW_SECONDS = 60;
const NO_LEASE: LimitLease = { settle: () => undefined };

/**
 * Requests and tokens per minute per agent, team, delegation and model, counted by
 * rate-limiter-flexible in fixed one-minute windows — in memory, or in Redis so that
 * every proxy replica draws from one count. A request is charged to every rule that
 * applies; if any refuses, what was charged is given back, so a refused request never
 * uses up capacity. Tokens are charged as estimated before sending and corrected by the
 * difference once the provider reports usage (within the same window).
 */
export class RateLimits {
  private readonly rules: Rule[];

  constructor(
    limits: LimitConfig[],
    options: { redis?: Redis | undefined; keyPrefix?: string; now?: () => number } = {},
  ) {
    const prefix = options.keyPrefix ?? "mandate:llm:rl";
    this.now = options.now ?? Date.now;
    this.rules = limits.flatMap((l, i) =>
      (["rpm", "tpm"] as const)
        .filter((kind) => l[kind] !== undefined)
        .map((kind) => {
          const settings = { points: l[kind]!, duration: WINDOW_SECONDS, keyPrefix: `${prefix}:${i}:${l.scope}:${kind}` };
          const limiter = options.redis ? new RateLimiterRedis({ ...settings, storeClient: options.redis, rejectIfRedisNotReady: true }) : new RateLimiterMemory(settings);
          return { scope: l.scope, name: l.name, kind, limit: l[kind]!, limiter };
        }),
    );
  }

  private readonly now: () => number;

  get configured(): boolean {
    return this.rules.length > 0;
  }

  /** The rules that bind this subject: a rule naming the agent (team, …) replaces the general rule for that scope. */
  private applicable(subject: Subject): { rule: Rule; key: string }[] {
    const out: { rule: Rule; key: string }[] = [];
    for (const kind of ["rpm", "tpm"] as const) {
      for (const scope of ["agent", "team", "delegation", "model"] as const) {
        const value = subject[scope];
        if (!value) continue;
        const rules = this.rules.filter((r) => r.kind === kind && r.scope === scope);
        const specific = rules.filter((r) => r.name === value);
        for (const rule of specific.length ? specific : rules.filter((r) => r.name === undefined)) out.push({ rule, key: value });
      }
    }
    return out;
  }

  async acquire(subject: Subject, estimatedTokens: number): Promise<LimitLease> {
    if (this.rules.length === 0) return NO_LEASE;
    const rules = this.applicable(subject);
    if (rules.length === 0) return NO_LEASE;
    const tokens = Math.max(1, Math.ceil(estimatedTokens));
    const results = await Promise.allSettled(rules.map(({ rule, key }) => rule.limiter.consume(key, rule.kind === "rpm" ? 1 : tokens)));
    const charges: Charge[] = [];
    let refused: { rule: Rule; key: string; res: RateLimiterRes } | undefined;
    let storeError: unknown;
    results.forEach((result, i) => {
      const { rule, key } = rules[i]!;
      const points = rule.kind === "rpm" ? 1 : tokens;
      if (result.status === "fulfilled") charges.push({ rule, key, points, windowEndsAt: this.now() + result.value.msBeforeNext });
      else if (result.reason instanceof RateLimiterRes) {
        // The refused counter was incremented too: it is given back with the rest.
        charges.push({ rule, key, points, windowEndsAt: this.now() + result.reason.msBeforeNext });
        if (!refused || result.reason.msBeforeNext > refused.res.msBeforeNext) refused = { rule, key, res: result.reason };
      } else storeError = result.reason;
    });
    if (refused || storeError) {
      await Promise.allSettled(charges.map((c) => c.rule.limiter.reward(c.key, c.points)));
      if (storeError) throw new MandateError("STORE_UNAVAILABLE", `the rate-limit store cannot be reached (${(storeError as Error).message ?? storeError}); requests are refused until it is back`);
      const { rule, key, res } = refused!;
      const retryAfterSeconds = Math.max(1, Math.ceil(res.msBeforeNext / 1000));
      const what = rule.kind === "rpm" ? "requests per minute" : "tokens per minute";
      const tooBig = rule.kind === "tpm" && tokens > rule.limit;
      throw new MandateError(
        "RATE_LIMITED",
        tooBig
          ? `rate limit: this request's estimated ${tokens} tokens exceed the ${rule.scope} ${key} limit of ${rule.limit} ${what}; lower max_tokens or shorten the prompt`
          : `rate limit: ${rule.scope} ${key} is over its ${rule.limit} ${what}; retry in ${retryAfterSeconds}s`,
        { details: { limit: { scope: rule.scope, name: key, kind: rule.kind, limit: rule.limit }, retryAfterSeconds } },
      );
    }
    return {
      settle: (actualTokens: number) => {
        const now = this.now();
        for (const c of charges) {
          if (c.rule.kind !== "tpm" || now >= c.windowEndsAt) continue;
          const diff = Math.ceil(actualTokens) - c.points;
          if (diff > 0) void c.rule.limiter.penalty(c.key, diff).catch(() => undefined);
          else if (diff < 0) void c.rule.limiter.reward(c.key, -diff).catch(() => undefined);
        }
      },
    };
  }
}
