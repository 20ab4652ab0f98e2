import type { Redis } from "ioredis";

/**
 * Spend counters with reservations, in integer nano-dollars. `reserve` admits an
 * amount against every key at once or against none: it succeeds only if, for each key,
 * spent + reserved + amount stays within the limit. `settle` releases the reservation
 * and adds what was actually spent. Reservations expire (a process that died holding
 * one does not keep the budget locked). Each key is seeded once with the spend already
 * recorded in the store for its period.
 */
export interface LedgerItem {
  key: string;
  limitNano: number;
  /** spend already recorded for this key's period (read from the store on first use) */
  seed: () => Promise<number>;
  /** when the key's period ends (ms), so Redis can forget it afterwards */
  expiresAt: number | undefined;
}

export type ReserveResult = { ok: true } | { ok: false; key: string; spentNano: number; reservedNano: number };

export interface BudgetLedger {
  reserve(items: LedgerItem[], amountNano: number, reservationId: string, ttlMs: number): Promise<ReserveResult>;
  /** Returns each key's spend after settling. */
  settle(items: LedgerItem[], reservationId: string, actualNano: number): Promise<number[]>;
  balance(item: LedgerItem): Promise<{ spentNano: number; reservedNano: number }>;
}

interface MemoryEntry {
  spent: number;
  reserved: number;
  reservations: Map<string, { amount: number; expiresAt: number }>;
}

export class MemoryBudgetLedger implements BudgetLedger {
  private readonly entries = new Map<string, MemoryEntry>();
  private readonly seeding = new Map<string, Promise<void>>();

  constructor(private readonly now: () => number = Date.now) {}

  private async ensure(item: LedgerItem): Promise<MemoryEntry> {
    let entry = this.entries.get(item.key);
    if (entry) return entry;
    let seeding = this.seeding.get(item.key);
    if (!seeding) {
      seeding = item.seed().then((spent) => {
        if (!this.entries.has(item.key)) this.entries.set(item.key, { spent, reserved: 0, reservations: new Map() });
      });
      this.seeding.set(item.key, seeding);
      seeding.finally(() => this.seeding.delete(item.key)).catch(() => undefined);
    }
    await seeding;
    entry = this.entries.get(item.key)!;
    return entry;
  }

  private expire(entry: MemoryEntry): void {
    const now = this.now();
    for (const [id, r] of entry.reservations) {
      if (r.expiresAt > now) continue;
      entry.reserved -= r.amount;
      entry.reservations.delete(id);
    }
  }

  async reserve(items: LedgerItem[], amountNano: number, reservationId: string, ttlMs: number): Promise<ReserveResult> {
    const entries = await Promise.all(items.map((i) => this.ensure(i)));
    // From here to the end nothing awaits: check-all-then-take is atomic on one event loop.
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      this.expire(entry);
      if (entry.spent + entry.reserved + amountNano > items[i]!.limitNano) return { ok: false, key: items[i]!.key, spentNano: entry.spent, reservedNano: entry.reserved };
    }
    const expiresAt = this.now() + ttlMs;
    for (const entry of entries) {
      entry.reserved += amountNano;
      entry.reservations.set(reservationId, { amount: amountNano, expiresAt });
    }
    return { ok: true };
  }

  async settle(items: LedgerItem[], reservationId: string, actualNano: number): Promise<number[]> {
    const entries = await Promise.all(items.map((i) => this.ensure(i)));
    return entries.map((entry) => {
      const r = entry.reservations.get(reservationId);
      if (r) {
        entry.reserved -= r.amount;
        entry.reservations.delete(reservationId);
      }
      entry.spent += actualNano;
      return entry.spent;
    });
  }

  async balance(item: LedgerItem): Promise<{ spentNano: number; reservedNano: number }> {
    const entry = await this.ensure(item);
    this.expire(entry);
    return { spentNano: entry.spent, reservedNano: entry.reserved };
  }
}

const RESERVE = `
local now = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local id = ARGV[3]
local expires = tonumber(ARGV[4])
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 + 3 * i])
  redis.call('HSETNX', key, 'spent', ARGV[3 + 3 * i])
  local zkey = key .. ':res'
  local stale = redis.call('ZRANGEBYSCORE', zkey, '-inf', now)
  for _, rid in ipairs(stale) do
    local amt = tonumber(redis.call('HGET', key, 'r:' .. rid) or '0')
    redis.call('HINCRBY', key, 'reserved', -amt)
    redis.call('HDEL', key, 'r:' .. rid)
    redis.call('ZREM', zkey, rid)
  end
  local spent = tonumber(redis.call('HGET', key, 'spent') or '0')
  local reserved = tonumber(redis.call('HGET', key, 'reserved') or '0')
  if spent + reserved + amount > limit then
    return {0, i, tostring(spent), tostring(reserved)}
  end
end
for i, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'reserved', amount)
  redis.call('HSET', key, 'r:' .. id, amount)
  redis.call('ZADD', key .. ':res', expires, id)
  local ttl = tonumber(ARGV[4 + 3 * i])
  if ttl > 0 then
    redis.call('PEXPIRE', key, ttl)
    redis.call('PEXPIRE', key .. ':res', ttl)
  end
end
return {1}
`;

const SETTLE = `
local id = ARGV[1]
local actual = tonumber(ARGV[2])
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('HSETNX', key, 'spent', ARGV[2 + i])
  local amt = redis.call('HGET', key, 'r:' .. id)
  if amt then
    redis.call('HINCRBY', key, 'reserved', -tonumber(amt))
    redis.call('HDEL', key, 'r:' .. id)
    redis.call('ZREM', key .. ':res', id)
  end
  out[i] = tostring(redis.call('HINCRBY', key, 'spent', actual))
end
return out
`;

/** The same ledger in Redis: each operation is one Lua script, atomic across every replica. */
export class RedisBudgetLedger implements BudgetLedger {
  private readonly seeds = new Map<string, number>();

  constructor(
    private readonly redis: Redis,
    private readonly now: () => number = Date.now,
  ) {}

  /** Seeds are read from the store once per key per process; HSETNX keeps the first replica's. */
  private async seedOf(item: LedgerItem): Promise<number> {
    const known = this.seeds.get(item.key);
    if (known !== undefined) return known;
    const exists = await this.redis.exists(item.key);
    const seed = exists ? 0 : await item.seed();
    this.seeds.set(item.key, seed);
    return seed;
  }

  async reserve(items: LedgerItem[], amountNano: number, reservationId: string, ttlMs: number): Promise<ReserveResult> {
    const now = this.now();
    const args: (string | number)[] = [now, amountNano, reservationId, now + ttlMs];
    for (const item of items) args.push(item.limitNano, await this.seedOf(item), item.expiresAt ? Math.max(1, item.expiresAt - now + 86_400_000) : 0);
    const result = (await this.redis.eval(RESERVE, items.length, ...items.map((i) => i.key), ...args)) as (number | string)[];
    if (Number(result[0]) === 1) return { ok: true };
    const index = Number(result[1]) - 1;
    return { ok: false, key: items[index]!.key, spentNano: Number(result[2]), reservedNano: Number(result[3]) };
  }

  async settle(items: LedgerItem[], reservationId: string, actualNano: number): Promise<number[]> {
    const seeds = await Promise.all(items.map((i) => this.seedOf(i)));
    const result = (await this.redis.eval(SETTLE, items.length, ...items.map((i) => i.key), reservationId, actualNano, ...seeds)) as string[];
    return result.map(Number);
  }

  async balance(item: LedgerItem): Promise<{ spentNano: number; reservedNano: number }> {
    const [spent, reserved] = await this.redis.hmget(item.key, "spent", "reserved");
    return { spentNano: Number(spent ?? (await this.seedOf(item))), reservedNano: Number(reserved ?? 0) };
  }
}
