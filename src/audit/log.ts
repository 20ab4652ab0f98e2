import type { Store, StoreTx } from "../store/index.js";
import type { AuditEvent, AuditEventInput } from "./event.js";
import { ulid } from "./ulid.js";

/** What every module depends on: a durable append. */
export interface AuditLog {
  /** Resolves only once the event is durable; callers that must not act unaudited await it. */
  append(event: AuditEventInput): Promise<AuditEvent>;
  /** Appends inside a caller's transaction, so the event commits with the records it describes. */
  appendInTransaction(tx: StoreTx, event: AuditEventInput): Promise<AuditEvent>;
}

export function stampEvent(input: AuditEventInput, now = Date.now()): AuditEvent {
  return { id: ulid(now), time: new Date(now).toISOString(), ...input };
}

/** The store-backed log: one row per event, with indexed columns for search. */
export class StoreAuditLog implements AuditLog {
  constructor(private readonly store: Store) {}

  async append(input: AuditEventInput): Promise<AuditEvent> {
    let event: AuditEvent | undefined;
    await this.store.writeDurably(async (tx) => {
      event = await this.appendInTransaction(tx, input);
    });
    return event!;
  }

  async appendInTransaction(tx: StoreTx, input: AuditEventInput): Promise<AuditEvent> {
    const now = Date.now();
    const event = stampEvent(input, now);
    await tx
      .insertInto("audit_events")
      .values({
        id: event.id,
        time: now,
        type: event.type,
        code: event.code,
        actor_spiffe_id: event.actor.spiffeId ?? null,
        actor_agent: event.actor.agent ?? null,
        actor_user: event.actor.user ?? null,
        task_id: event.correlation?.task ?? event.delegation?.task ?? null,
        decision: event.decision ? (event.decision.allow ? "allow" : "deny") : null,
        outcome: event.outcome.status,
        body: JSON.stringify(event),
      })
      .execute();
    return event;
  }

  async list(filter: { type?: string; agent?: string; limit?: number } = {}): Promise<AuditEvent[]> {
    let query = this.store.db.selectFrom("audit_events").select("body").orderBy("seq", "desc").limit(filter.limit ?? 100);
    if (filter.type) query = query.where("type", "=", filter.type);
    if (filter.agent) query = query.where("actor_agent", "=", filter.agent);
    const rows = await query.execute();
    return rows.map((r) => JSON.parse(r.body) as AuditEvent);
  }
}
