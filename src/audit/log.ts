import { randomBytes } from "node:crypto";
import type { Store, StoreTx } from "../store/index.js";
import type { AuditEvent, AuditEventInput } from "./event.js";
import { canonicalJson } from "./canonical-json.js";
import { eventLeafHash, nextChainHash } from "./chain.js";
import { type AuditRowWriter, auditRowWriterFor } from "./event-rows.js";
import { type RedactionSettings, hmacValue, redactString, redactValue } from "./redact.js";
import { type AuditSearchFilter, searchAuditEvents } from "./search.js";
import { ulid } from "./ulid.js";

/** What every module depends on: a durable append. */
export interface AuditLog {
  /** Resolves only once the event is durable; callers that must not act unaudited await it. */
  append(event: AuditEventInput): Promise<AuditEvent>;
  /**
   * For events recorded after the action, which nobody waits on to act (a call's
   * outcome): durable with the next append's commit, or within a few milliseconds.
   * Resolves once durable, like `append`.
   */
  appendDeferred(event: AuditEventInput): Promise<AuditEvent>;
  /** Commits deferred events now, without waiting for their delay (shutdown, reports). */
  flushDeferred(): Promise<void>;
  /** Appends inside a caller's transaction, so the event commits with the records it describes. */
  appendInTransaction(tx: StoreTx, event: AuditEventInput): Promise<AuditEvent>;
}

export function stampEvent(input: AuditEventInput, now = Date.now()): AuditEvent {
  return { id: ulid(now), time: new Date(now).toISOString(), ...input };
}

const HMAC_KEY_META = "audit_hmac_key";

/** The store-backed log: one row per event, with indexed columns for search. */
export class StoreAuditLog implements AuditLog {
  private hmacKey: Buffer | undefined;
  private readonly rows: AuditRowWriter;

  constructor(
    private readonly store: Store,
    private readonly redaction: RedactionSettings = {},
  ) {
    this.rows = auditRowWriterFor(store);
  }

  /**
   * The per-deployment HMAC key, created once and shared by every control plane of the
   * store. Read through the caller's transaction: on SQLite a second query from outside
   * would wait for the connection the transaction holds.
   */
  private async keyFor(tx: StoreTx): Promise<Buffer> {
    if (this.hmacKey) return this.hmacKey;
    await tx.insertInto("meta").values({ key: HMAC_KEY_META, value: randomBytes(32).toString("base64") }).onConflict((oc) => oc.column("key").doNothing()).execute();
    const row = await tx.selectFrom("meta").select("value").where("key", "=", HMAC_KEY_META).executeTakeFirstOrThrow();
    this.hmacKey = Buffer.from(row.value, "base64");
    return this.hmacKey;
  }

  /** `hmac-sha256:<hex>` of a candidate value, to compare with a hashed field in an event. */
  async hashForInvestigation(value: string): Promise<string> {
    let result = "";
    await this.store.writeDurably(async (tx) => {
      result = hmacValue(await this.keyFor(tx), value);
    });
    return result;
  }

  async append(input: AuditEventInput): Promise<AuditEvent> {
    let event: AuditEvent | undefined;
    await this.store.writeDurably(async (tx) => {
      event = await this.appendInTransaction(tx, input);
    });
    return event!;
  }

  async appendDeferred(input: AuditEventInput): Promise<AuditEvent> {
    let event: AuditEvent | undefined;
    await this.store.writeDurablyDeferred(async (tx) => {
      event = await this.appendInTransaction(tx, input);
    });
    return event!;
  }

  flushDeferred(): Promise<void> {
    return this.store.drainWrites();
  }

  async appendInTransaction(tx: StoreTx, input: AuditEventInput): Promise<AuditEvent> {
    const now = Date.now();
    const key = await this.keyFor(tx);
    const target = input.target ? redactValue(input.target, key, this.redaction, "target") : undefined;
    const details = input.details ? redactValue(input.details, key, this.redaction, "details") : undefined;
    const outcome = input.outcome.message ? { ...input.outcome, message: redactString(input.outcome.message).text } : input.outcome;
    const paths = [...(target?.paths ?? []), ...(details?.paths ?? [])];
    const event: AuditEvent = {
      ...stampEvent(input, now),
      ...(target ? { target: target.value } : {}),
      ...(details ? { details: details.value } : {}),
      outcome,
      ...(paths.length ? { redacted: { paths } } : {}),
    };
    const head = await this.rows.readHead(tx);
    const seq = head.seq + 1;
    const body = canonicalJson(event);
    const leafHash = eventLeafHash(body);
    const chainHash = nextChainHash(head.chain_hash, leafHash);
    await this.rows.insert(tx, {
      id: event.id,
      time: now,
      type: event.type,
      code: event.code,
      actor_spiffe_id: event.actor.spiffeId ?? null,
      actor_agent: event.actor.agent ?? null,
      actor_user: event.actor.user ?? null,
      task_id: event.correlation?.task ?? event.delegation?.task ?? null,
      session_id: event.correlation?.session ?? null,
      delegation_id: event.delegation?.id ?? null,
      decision: event.decision ? (event.decision.allow ? "allow" : "deny") : null,
      outcome: event.outcome.status,
      body,
      chain_seq: seq,
      leaf_hash: leafHash,
      chain_hash: chainHash,
    });
    await this.rows.moveHead(tx, { seq, chain_hash: chainHash });
    return event;
  }

  /** Recent events, newest first (see `searchAuditEvents` for every filter). */
  list(filter: AuditSearchFilter = {}): Promise<AuditEvent[]> {
    return searchAuditEvents(this.store, filter);
  }

}
