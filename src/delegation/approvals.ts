import { createHash, randomBytes } from "node:crypto";
import { canonicalJson } from "../audit/canonical-json.js";
import { MandateError } from "../errors/index.js";
import type { AccessRequestTable, Store } from "../store/index.js";
import type { AccessRequestRecord, AccessRequestStatus } from "./types.js";

/** A pending request nobody decided lapses after this (or when its delegation does). */
export const PENDING_TTL_MS = 3600_000;
/** The longest time box an approver may give. */
export const MAX_APPROVAL_WINDOW_MS = 8 * 3600_000;

export interface RequestKey {
  requester: { kind: "agent" | "user"; name: string };
  delegationId: string | null;
  task: string | null;
  action: string;
  resource: string;
  argsHash: string | null;
}

/** Tool arguments hash canonically, so an approval covers exactly the call that was asked for. */
export function argumentsHash(args: unknown): string | null {
  if (args === undefined) return null;
  return createHash("sha256").update(canonicalJson(args)).digest("hex");
}

function matchKey(key: RequestKey): string {
  return createHash("sha256")
    .update(canonicalJson([key.requester.kind, key.requester.name, key.delegationId, key.action, key.resource, key.argsHash]))
    .digest("hex");
}

function toRecord(row: AccessRequestTable): AccessRequestRecord {
  const n = (v: number | null) => (v === null ? null : Number(v));
  return {
    id: row.id,
    status: row.status,
    requester: { kind: row.requester_kind, name: row.requester },
    delegationId: row.delegation_id,
    task: row.task,
    action: row.action,
    resource: row.resource,
    argsHash: row.args_hash,
    rule: row.rule,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    decidedAt: n(row.decided_at),
    decidedBy: row.decided_by,
    decisionReason: row.decision_reason,
    mode: row.grant_mode,
    validUntil: n(row.valid_until),
    usedAt: n(row.used_at),
    uses: Number(row.uses),
  };
}

/**
 * Access requests: the pending ones an approval-required decision creates, and the
 * approvals that later let the same call through, once or for a time box. Consuming a
 * single-use approval is one conditional update, so two control planes cannot both spend it.
 */
export class AccessRequests {
  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  /** An approval for exactly this call that may be used now; single-use ones are consumed. */
  async consumeApproval(key: RequestKey): Promise<AccessRequestRecord | undefined> {
    const t = this.now();
    const rows = await this.store.db.selectFrom("access_requests").selectAll().where("match_key", "=", matchKey(key)).where("status", "=", "approved").orderBy("decided_at").execute();
    for (const row of rows) {
      if (row.valid_until !== null && Number(row.valid_until) <= t) continue;
      if (row.grant_mode === "window") {
        await this.store.db.updateTable("access_requests").set((eb) => ({ uses: eb("uses", "+", 1), used_at: t })).where("id", "=", row.id).execute();
        return toRecord({ ...row, uses: Number(row.uses) + 1, used_at: t });
      }
      const spent = await this.store.db.updateTable("access_requests").set({ status: "consumed", used_at: t, uses: 1 }).where("id", "=", row.id).where("status", "=", "approved").executeTakeFirst();
      if (Number(spent.numUpdatedRows) === 1) return toRecord({ ...row, status: "consumed", used_at: t, uses: 1 });
    }
    return undefined;
  }

  /** A recent refusal of exactly this call: asking again within the pending lifetime gets the same answer, not a new request. */
  async recentDenial(key: RequestKey): Promise<AccessRequestRecord | undefined> {
    const row = await this.store.db
      .selectFrom("access_requests")
      .selectAll()
      .where("match_key", "=", matchKey(key))
      .where("status", "=", "denied")
      .where("decided_at", ">", this.now() - PENDING_TTL_MS)
      .orderBy("decided_at", "desc")
      .executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  /** The pending request for this call, created if there is none; `created` tells which. */
  async pending(key: RequestKey, rule: string, notAfter: number): Promise<{ record: AccessRequestRecord; created: boolean }> {
    const t = this.now();
    const mk = matchKey(key);
    const existing = await this.store.db.selectFrom("access_requests").selectAll().where("match_key", "=", mk).where("status", "=", "pending").where("expires_at", ">", t).orderBy("created_at").executeTakeFirst();
    if (existing) return { record: toRecord(existing), created: false };
    const row: AccessRequestTable = {
      id: `ar-${randomBytes(8).toString("hex")}`,
      status: "pending",
      requester_kind: key.requester.kind,
      requester: key.requester.name,
      delegation_id: key.delegationId,
      task: key.task,
      action: key.action,
      resource: key.resource,
      args_hash: key.argsHash,
      rule,
      match_key: mk,
      created_at: t,
      expires_at: Math.min(t + PENDING_TTL_MS, notAfter),
      decided_at: null,
      decided_by: null,
      decision_reason: null,
      grant_mode: null,
      valid_until: null,
      used_at: null,
      uses: 0,
    };
    await this.store.db.insertInto("access_requests").values(row).execute();
    return { record: toRecord(row), created: true };
  }

  async get(id: string): Promise<AccessRequestRecord> {
    const row = await this.store.db.selectFrom("access_requests").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new MandateError("NOT_FOUND", `no access request with id ${id}; see \`mandate requests ls\``);
    return this.withLapse(toRecord(row));
  }

  async list(filter: { status?: AccessRequestStatus | undefined; task?: string | undefined } = {}): Promise<AccessRequestRecord[]> {
    let query = this.store.db.selectFrom("access_requests").selectAll().orderBy("created_at", "desc").limit(500);
    if (filter.task) query = query.where("task", "=", filter.task);
    const records = (await query.execute()).map((r) => this.withLapse(toRecord(r)));
    return filter.status ? records.filter((r) => r.status === filter.status) : records;
  }

  /** A pending request past its time reads as expired (rows are not rewritten for that). */
  private withLapse(record: AccessRequestRecord): AccessRequestRecord {
    return record.status === "pending" && record.expiresAt <= this.now() ? { ...record, status: "expired" } : record;
  }

  /** Approves or denies a pending request; only one decision wins. */
  async decide(id: string, input: { approve: boolean; by: string; reason: string | null; mode: "once" | "window"; windowMs?: number | undefined; notAfter: number }): Promise<AccessRequestRecord> {
    const t = this.now();
    const current = await this.get(id);
    if (current.status !== "pending") throw new MandateError("CONFLICT", `access request ${id} is ${current.status}, not pending`);
    const validUntil = input.approve ? Math.min(input.mode === "window" ? t + (input.windowMs ?? 0) : t + PENDING_TTL_MS, input.notAfter) : null;
    const updated = await this.store.db
      .updateTable("access_requests")
      .set({ status: input.approve ? "approved" : "denied", decided_at: t, decided_by: input.by, decision_reason: input.reason, grant_mode: input.approve ? input.mode : null, valid_until: validUntil })
      .where("id", "=", id)
      .where("status", "=", "pending")
      .executeTakeFirst();
    if (Number(updated.numUpdatedRows) !== 1) throw new MandateError("CONFLICT", `access request ${id} was decided by someone else a moment ago`);
    return this.get(id);
  }
}
