import { randomBytes } from "node:crypto";
import { MandateError } from "../errors/index.js";
import type { LockTable, LockTargetKind, Store } from "../store/index.js";
import { RevisionPoller, bumpRevision } from "../store/revision.js";

export interface Lock {
  id: string;
  target: { kind: LockTargetKind; value: string };
  reason: string;
  createdBy: string;
  createdAt: string;
  expiresAt: string | null;
}

export interface LockSubject {
  spiffeId: string;
  agent?: string | undefined;
  serialHex?: string | undefined;
  instanceId?: string | undefined;
}

const REVISION_KEY = "locks_revision";

function toLock(row: LockTable): Lock {
  return {
    id: row.id,
    target: { kind: row.target_kind, value: row.target_value },
    reason: row.reason,
    createdBy: row.created_by,
    createdAt: new Date(row.created_at).toISOString(),
    expiresAt: row.expires_at === null ? null : new Date(row.expires_at).toISOString(),
  };
}

/**
 * Locks are how Mandate revokes: every verifier answers `lockFor()` from memory
 * (no I/O on the request path) and polls one revision counter in the store, so a
 * lock written by any control plane is enforced by all of them within a poll interval.
 */
export class LockRegistry {
  private byKey = new Map<string, LockTable>();
  private readonly poller: RevisionPoller;

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {
    this.poller = new RevisionPoller(store, REVISION_KEY, () => this.load(), now);
  }

  start(pollIntervalMs = 200): Promise<void> {
    return this.poller.start(pollIntervalMs);
  }

  stop(): void {
    this.poller.stop();
  }

  /** Fails closed: when the lock view has not been refreshed for too long, every identity counts as locked. */
  assertFresh(maxAgeMs = 5000): void {
    const stale = this.poller.staleness(maxAgeMs);
    if (stale) {
      throw new MandateError("STORE_UNAVAILABLE", `the lock list could not be refreshed for ${Math.round(stale.ageMs / 1000)}s; refusing to authenticate until it can`, {
        cause: stale.error,
      });
    }
  }

  refresh(force = false): Promise<void> {
    return this.poller.refresh(force);
  }

  private async load(): Promise<void> {
    const rows = await this.store.db.selectFrom("locks").selectAll().execute();
    const byKey = new Map<string, LockTable>();
    const instanceLocks = rows.filter((r) => r.target_kind === "instance");
    for (const row of rows) byKey.set(`${row.target_kind}:${row.target_value}`, row);
    // An instance lock also covers every still-valid certificate issued to that instance,
    // so verifiers can enforce it from the certificate serial alone.
    if (instanceLocks.length > 0) {
      const serials = await this.store.db
        .selectFrom("issued_svids")
        .select(["serial", "instance_id"])
        .where("instance_id", "in", instanceLocks.map((r) => r.target_value))
        .where("not_after", ">", this.now())
        .execute();
      for (const s of serials) {
        const lock = instanceLocks.find((r) => r.target_value === s.instance_id)!;
        if (!byKey.has(`serial:${s.serial}`)) byKey.set(`serial:${s.serial}`, lock);
      }
    }
    this.byKey = byKey;
  }

  /** The lock in force for this subject, if any. Pure memory lookups. */
  lockFor(subject: LockSubject): Lock | undefined {
    const keys = [`spiffe_id:${subject.spiffeId}`];
    if (subject.agent) keys.push(`agent:${subject.agent}`);
    if (subject.serialHex) keys.push(`serial:${subject.serialHex.toLowerCase()}`);
    if (subject.instanceId) keys.push(`instance:${subject.instanceId}`);
    const t = this.now();
    for (const key of keys) {
      const row = this.byKey.get(key);
      if (row && (row.expires_at === null || row.expires_at > t)) return toLock(row);
    }
    return undefined;
  }

  assertNotLocked(subject: LockSubject): void {
    const lock = this.lockFor(subject);
    if (lock) {
      throw new MandateError("LOCKED", `${subject.spiffeId} is locked (${lock.target.kind} ${lock.target.value}): ${lock.reason}`, {
        details: { lockId: lock.id, reason: lock.reason, expiresAt: lock.expiresAt },
      });
    }
  }

  async add(input: { kind: LockTargetKind; value: string; reason: string; createdBy: string; ttlMs?: number | undefined }): Promise<Lock> {
    const t = this.now();
    const row: LockTable = {
      id: `lock-${randomBytes(8).toString("hex")}`,
      target_kind: input.kind,
      target_value: input.kind === "serial" ? input.value.toLowerCase() : input.value,
      reason: input.reason,
      created_by: input.createdBy,
      created_at: t,
      expires_at: input.ttlMs ? t + input.ttlMs : null,
    };
    await this.store.transaction(async (tx) => {
      await tx.insertInto("locks").values(row).execute();
      await bumpRevision(tx, REVISION_KEY);
    });
    await this.refresh(true);
    return toLock(row);
  }

  async remove(id: string): Promise<Lock> {
    const row = await this.store.db.selectFrom("locks").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new MandateError("NOT_FOUND", `no lock with id ${id}; see \`mandate locks ls\``);
    await this.store.transaction(async (tx) => {
      await tx.deleteFrom("locks").where("id", "=", id).execute();
      await bumpRevision(tx, REVISION_KEY);
    });
    await this.refresh(true);
    return toLock(row);
  }

  async list(options: { includeExpired?: boolean } = {}): Promise<Lock[]> {
    const rows = await this.store.db.selectFrom("locks").selectAll().orderBy("created_at").execute();
    const t = this.now();
    return rows.filter((r) => options.includeExpired || r.expires_at === null || r.expires_at > t).map(toLock);
  }
}
