import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MemoryBudgetLedger } from "./budget-ledger.js";
import { periodOf } from "./budgets.js";

describe("budget ledger (memory)", () => {
  it("never lets reservations plus spend exceed the limit, whatever the interleaving of reserves and settles", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.record({ amount: fc.integer({ min: 1, max: 50 }), actual: fc.integer({ min: 0, max: 50 }), settleNow: fc.boolean() }), { maxLength: 40 }), async (ops) => {
        const ledger = new MemoryBudgetLedger(() => 0);
        const item = { key: "k", limitNano: 200, seed: async () => 0, expiresAt: undefined };
        const open: { id: string; actual: number }[] = [];
        let i = 0;
        for (const op of ops) {
          const id = `r${i++}`;
          const result = await ledger.reserve([item], op.amount, id, 60_000);
          const balance = await ledger.balance(item);
          expect(balance.spentNano + balance.reservedNano).toBeLessThanOrEqual(200 + 50);
          if (result.ok) {
            // What was admitted fits within the limit at the time it was admitted.
            expect(balance.reservedNano + balance.spentNano).toBeLessThanOrEqual(Math.max(200, balance.spentNano + op.amount));
            open.push({ id, actual: Math.min(op.actual, op.amount) });
          }
          if (op.settleNow && open.length) {
            const done = open.shift()!;
            await ledger.settle([item], done.id, done.actual);
          }
        }
        for (const done of open) await ledger.settle([item], done.id, done.actual);
        const final = await ledger.balance(item);
        expect(final.reservedNano).toBe(0);
        // When actual cost never exceeds the estimate, spend never exceeds the limit.
        expect(final.spentNano).toBeLessThanOrEqual(200);
      }),
    );
  });

  it("reserves against several budgets all or nothing, and expired reservations are released", async () => {
    let now = 0;
    const ledger = new MemoryBudgetLedger(() => now);
    const team = { key: "team", limitNano: 100, seed: async () => 0, expiresAt: undefined };
    const agent = { key: "agent", limitNano: 30, seed: async () => 10, expiresAt: undefined };
    expect((await ledger.reserve([team, agent], 25, "a", 1000)).ok).toBe(false);
    expect((await ledger.balance(team)).reservedNano).toBe(0);
    expect((await ledger.reserve([team, agent], 20, "b", 1000)).ok).toBe(true);
    expect((await ledger.reserve([team, agent], 1, "c", 1000)).ok).toBe(false);
    now = 1001;
    expect((await ledger.reserve([team, agent], 20, "d", 1000)).ok).toBe(true);
  });

  it("periods are UTC days, ISO weeks (Monday) and calendar months", () => {
    const t = Date.parse("2026-12-02T13:00:00Z"); // a Wednesday
    expect(periodOf("daily", t)).toEqual({ id: "2026-12-02", start: Date.parse("2026-12-02T00:00:00Z"), end: Date.parse("2026-12-03T00:00:00Z") });
    expect(periodOf("weekly", t).start).toBe(Date.parse("2026-11-30T00:00:00Z"));
    expect(periodOf("monthly", t)).toEqual({ id: "2026-12", start: Date.parse("2026-12-01T00:00:00Z"), end: Date.parse("2027-01-01T00:00:00Z") });
    expect(periodOf("total", t).end).toBeUndefined();
  });
});
