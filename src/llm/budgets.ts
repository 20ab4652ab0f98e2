import { MandateError } from "../errors/index.js";
import type { BudgetConfig, BudgetPeriod, BudgetScope } from "./config.js";
import type { BudgetLedger, LedgerItem } from "./budget-ledger.js";
import type { Subject } from "./limits.js";
import { NANO } from "./prices.js";

export interface BudgetRule {
  scope: BudgetScope;
  name: string;
  period: BudgetPeriod;
  limitUsd: number;
  softPercent: number;
  /** where the rule came from: the configuration, or the delegation's max_spend */
  source: "config" | "delegation";
}

export interface BudgetCrossing {
  rule: BudgetRule;
  spentUsd: number;
}

export interface BudgetHold {
  rules: BudgetRule[];
  /** Releases the reservation and records the actual cost; returns the soft thresholds this spend crossed. */
  settle(actualNano: number): Promise<BudgetCrossing[]>;
}

const RESERVATION_TTL_MS = 15 * 60_000;

/** Start and end (ms, UTC) of the period containing `now`. */
export function periodOf(period: BudgetPeriod, now: number): { id: string; start: number; end: number | undefined } {
  const d = new Date(now);
  switch (period) {
    case "daily": {
      const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
      return { id: new Date(start).toISOString().slice(0, 10), start, end: start + 86_400_000 };
    }
    case "weekly": {
      // ISO weeks start on Monday.
      const day = (d.getUTCDay() + 6) % 7;
      const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() - day);
      return { id: `w${new Date(start).toISOString().slice(0, 10)}`, start, end: start + 7 * 86_400_000 };
    }
    case "monthly": {
      const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
      return { id: new Date(start).toISOString().slice(0, 7), start, end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
    }
    default:
      return { id: "total", start: 0, end: undefined };
  }
}

const usd = (nano: number) => Math.round((nano / NANO) * 1e6) / 1e6;

/**
 * Spend limits per team, agent and delegation over a period. Before a request is sent,
 * its estimated cost is reserved against every budget that applies, all or nothing:
 * a request whose estimate would take any of them over the limit is refused, so a
 * burst of concurrent requests cannot overspend (only a request whose real cost
 * exceeds its estimate can, by the difference). The reservation is settled with the
 * actual cost; crossing the soft threshold is reported once, by the request that crossed it.
 */
export class Budgets {
  constructor(
    private readonly config: BudgetConfig[],
    private readonly ledger: BudgetLedger,
    /** spend already recorded in the store for a scope since a time (nano-dollars) */
    private readonly recordedSpend: (scope: BudgetScope, name: string, since: number) => Promise<number>,
    private readonly now: () => number = Date.now,
    private readonly keyPrefix = "mandate:llm:budget",
  ) {}

  get configured(): boolean {
    return this.config.length > 0;
  }

  /** `spendCeilings`: each delegation link's max_spend (a sub-delegation's spend counts against every link above it too). */
  rulesFor(subject: Subject, spendCeilings: { delegationId: string; usd: number }[] = []): BudgetRule[] {
    const rules: BudgetRule[] = [];
    for (const scope of ["team", "agent", "delegation"] as const) {
      const value = subject[scope];
      if (!value) continue;
      const candidates = this.config.filter((b) => b.scope === scope);
      const specific = candidates.filter((b) => b.name === value);
      for (const b of specific.length ? specific : candidates.filter((c) => c.name === undefined)) {
        rules.push({ scope, name: value, period: b.period, limitUsd: b.limitUsd, softPercent: b.softPercent, source: "config" });
      }
    }
    if (subject.delegation) {
      for (const ceiling of spendCeilings) rules.push({ scope: "delegation", name: ceiling.delegationId, period: "total", limitUsd: ceiling.usd, softPercent: 80, source: "delegation" });
    }
    return rules;
  }

  private item(rule: BudgetRule, now: number): LedgerItem {
    const period = periodOf(rule.period, now);
    // One hash tag keeps every budget key in one Redis Cluster slot, as a multi-key script needs.
    return {
      key: `{${this.keyPrefix}}:${rule.scope}:${rule.name}:${rule.period}:${period.id}:${Math.round(rule.limitUsd * NANO)}`,
      limitNano: Math.round(rule.limitUsd * NANO),
      seed: () => this.recordedSpend(rule.scope, rule.name, period.start),
      expiresAt: period.end,
    };
  }

  async reserve(rules: BudgetRule[], estimateNano: number, reservationId: string): Promise<BudgetHold> {
    const now = this.now();
    const items = rules.map((r) => this.item(r, now));
    let result;
    try {
      result = await this.ledger.reserve(items, estimateNano, reservationId, RESERVATION_TTL_MS);
    } catch (error) {
      throw new MandateError("STORE_UNAVAILABLE", `the budget store cannot be reached (${(error as Error).message}); requests under a budget are refused until it is back`);
    }
    if (!result.ok) {
      const rule = rules[items.findIndex((i) => i.key === result.key)]!;
      const left = Math.max(0, rule.limitUsd - usd(result.spentNano) - usd(result.reservedNano));
      throw new MandateError(
        "BUDGET_EXCEEDED",
        `budget: ${rule.scope} ${rule.name} has $${left.toFixed(4)} left of its ${rule.period} $${rule.limitUsd} (spent $${usd(result.spentNano).toFixed(4)}, in flight $${usd(result.reservedNano).toFixed(4)}); this request could cost up to $${usd(estimateNano).toFixed(4)}`,
        { details: { budget: { scope: rule.scope, name: rule.name, period: rule.period, limitUsd: rule.limitUsd, spentUsd: usd(result.spentNano), reservedUsd: usd(result.reservedNano), source: rule.source }, estimateUsd: usd(estimateNano) } },
      );
    }
    return {
      rules,
      settle: async (actualNano: number) => {
        const after = await this.ledger.settle(items, reservationId, actualNano);
        const crossings: BudgetCrossing[] = [];
        after.forEach((spent, i) => {
          const rule = rules[i]!;
          const soft = (items[i]!.limitNano * rule.softPercent) / 100;
          if (spent >= soft && spent - actualNano < soft) crossings.push({ rule, spentUsd: usd(spent) });
        });
        return crossings;
      },
    };
  }

  async status(rule: BudgetRule): Promise<{ spentUsd: number; reservedUsd: number }> {
    const balance = await this.ledger.balance(this.item(rule, this.now()));
    return { spentUsd: usd(balance.spentNano), reservedUsd: usd(balance.reservedNano) };
  }
}
