import { randomBytes } from "node:crypto";
import { MandateError } from "../errors/index.js";
import type { DelegationScope } from "../policy/index.js";
import type { DelegationTable, Store } from "../store/index.js";
import { RevisionPoller, bumpRevision } from "../store/revision.js";
import type { Grant, GrantStatus } from "./types.js";

const REVISION_KEY = "delegations_revision";
/** Grants expired longer ago than this are dropped from the in-memory view (they can only be listed). */
const KEEP_EXPIRED_MS = 24 * 3600_000;

function toGrant(row: DelegationTable): Grant {
  return {
    id: row.id,
    parentId: row.parent_id,
    rootId: row.root_id,
    depth: Number(row.depth),
    task: row.task,
    delegator: { kind: row.delegator_kind, name: row.delegator_name },
    agent: row.agent,
    scope: JSON.parse(row.scope) as DelegationScope,
    createdBy: row.created_by,
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
    revokedBy: row.revoked_by,
    revokeReason: row.revoke_reason,
  };
}

export function grantStatus(grant: Grant, now: number): GrantStatus {
  if (grant.revokedAt !== null) return "revoked";
  return grant.expiresAt <= now ? "expired" : "active";
}

export function newGrantId(): string {
  return `d-${randomBytes(8).toString("hex")}`;
}

/**
 * The grants, held in memory for the request path and refreshed from one revision
 * counter in the store (as locks are), so a revocation written by any control plane is
 * enforced by every one within a poll interval. Expiry needs no poll: it is a time.
 */
export class DelegationRegistry {
  private byId = new Map<string, Grant>();
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

  /** Fails closed: a view not refreshed for too long (5 s, or five poll intervals) could be missing a revocation. */
  assertFresh(maxAgeMs = Math.max(5000, 5 * this.poller.pollIntervalMs)): void {
    const stale = this.poller.staleness(maxAgeMs);
    if (stale) {
      throw new MandateError("STORE_UNAVAILABLE", `the delegation list could not be refreshed for ${Math.round(stale.ageMs / 1000)}s; refusing delegations until it can`, {
        cause: stale.error,
      });
    }
  }

  /** One refresh at a time; a forced one waits for the running one and then reads again. */
  refresh(force = false): Promise<void> {
    return this.poller.refresh(force);
  }

  private async load(): Promise<void> {
    const rows = await this.store.db.selectFrom("delegations").selectAll().where("expires_at", ">", this.now() - KEEP_EXPIRED_MS).execute();
    const byId = new Map<string, Grant>();
    for (const row of rows) byId.set(row.id, toGrant(row));
    this.byId = byId;
  }

  /** From memory; `undefined` when unknown (or expired for more than a day). */
  cached(id: string): Grant | undefined {
    return this.byId.get(id);
  }

  /** The chain ending at `id`, root first, from memory. */
  chain(id: string): Grant[] | undefined {
    const links: Grant[] = [];
    let current = this.byId.get(id);
    while (current) {
      links.unshift(current);
      if (current.parentId === null) return links;
      if (links.length > 64) return undefined;
      current = this.byId.get(current.parentId);
    }
    return undefined;
  }

  /** Live grants held by an agent, from memory. */
  activeFor(agent: string): Grant[] {
    const t = this.now();
    return [...this.byId.values()].filter((g) => g.agent === agent && grantStatus(g, t) === "active").sort((a, b) => a.createdAt - b.createdAt);
  }

  async get(id: string): Promise<Grant> {
    const row = await this.store.db.selectFrom("delegations").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new MandateError("NOT_FOUND", `no delegation with id ${id}; see \`mandate delegations ls\``);
    return toGrant(row);
  }

  async list(filter: { agent?: string | undefined; delegator?: string | undefined; task?: string | undefined; status?: GrantStatus | undefined } = {}): Promise<Grant[]> {
    let query = this.store.db.selectFrom("delegations").selectAll().orderBy("created_at", "desc").limit(1000);
    if (filter.agent) query = query.where("agent", "=", filter.agent);
    if (filter.delegator) query = query.where("delegator_name", "=", filter.delegator);
    if (filter.task) query = query.where("task", "=", filter.task);
    const t = this.now();
    const grants = (await query.execute()).map(toGrant);
    return filter.status ? grants.filter((g) => grantStatus(g, t) === filter.status) : grants;
  }

  async insert(grant: Grant): Promise<void> {
    await this.store.transaction(async (tx) => {
      await tx
        .insertInto("delegations")
        .values({
          id: grant.id,
          parent_id: grant.parentId,
          root_id: grant.rootId,
          depth: grant.depth,
          task: grant.task,
          delegator_kind: grant.delegator.kind,
          delegator_name: grant.delegator.name,
          agent: grant.agent,
          scope: JSON.stringify(grant.scope),
          created_by: grant.createdBy,
          created_at: grant.createdAt,
          expires_at: grant.expiresAt,
          revoked_at: null,
          revoked_by: null,
          revoke_reason: null,
        })
        .execute();
      await bumpRevision(tx, REVISION_KEY);
    });
    await this.refresh(true);
  }

  /** Revokes a grant and every sub-delegation made under it; returns the ids revoked now. */
  async revoke(id: string, by: string, reason: string): Promise<string[]> {
    const t = this.now();
    const revoked = await this.store.transaction(async (tx) => {
      const root = await tx.selectFrom("delegations").select(["id", "revoked_at"]).where("id", "=", id).executeTakeFirst();
      if (!root) throw new MandateError("NOT_FOUND", `no delegation with id ${id}; see \`mandate delegations ls\``);
      const ids: string[] = [];
      let frontier = [id];
      while (frontier.length > 0) {
        ids.push(...frontier);
        const children = await tx.selectFrom("delegations").select("id").where("parent_id", "in", frontier).execute();
        frontier = children.map((c) => c.id).filter((c) => !ids.includes(c));
      }
      const live = await tx.selectFrom("delegations").select("id").where("id", "in", ids).where("revoked_at", "is", null).execute();
      if (live.length > 0) {
        await tx.updateTable("delegations").set({ revoked_at: t, revoked_by: by, revoke_reason: reason }).where("id", "in", live.map((l) => l.id)).execute();
        await bumpRevision(tx, REVISION_KEY);
      }
      return live.map((l) => l.id);
    });
    await this.refresh(true);
    return revoked;
  }
}
