import { MandateError } from "../errors/index.js";
import type { RoleTable, RuntimeAllowlistTable, Store } from "../store/index.js";
import { RevisionPoller, bumpRevision } from "../store/revision.js";
import { brokenRole, compileRole, compileRoleSource, type CompiledRole } from "./compile.js";
import { compileRuntimeList, type PolicySnapshot, type RuntimeList, type SnapshotSource } from "./engine.js";
import { globProblem } from "./glob.js";
import { type ParsedRole, parseRoleDocuments } from "./role-document.js";

export const POLICY_REVISION_KEY = "policy_revision";

export interface StoredRole {
  name: string;
  description?: string | undefined;
  /** the YAML document as applied */
  source: string;
  createdAt: string;
  updatedAt: string;
  updatedBy: string;
}

export interface RuntimeEntry {
  effect: "allow" | "deny";
  pattern: string;
  reason: string | null;
  createdAt: string;
  createdBy: string;
}

export interface ApplyResult {
  created: string[];
  updated: string[];
  unchanged: string[];
}

const iso = (ms: number | string) => new Date(Number(ms)).toISOString();

/**
 * Roles and the runtime allow-list in the store, compiled into the snapshot the engine
 * decides on. Like the lock registry, it polls one revision counter and recompiles when
 * it moves, so a role applied on any control plane is enforced by all of them within a
 * poll interval (200 ms by default). When the store cannot be read for too long the
 * snapshot is reported stale and the engine refuses everything (fail closed).
 */
export class RoleRegistry implements SnapshotSource {
  private current: PolicySnapshot = { revision: "", roles: new Map(), runtime: compileRuntimeList({ allow: [], deny: [] }) };
  private readonly poller: RevisionPoller;
  /** roles that are stored but did not compile (never expected; reported by `problems()`, and they deny everything) */
  private broken = new Map<string, string>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
    private readonly maxStalenessMs = 5000,
  ) {
    this.poller = new RevisionPoller(store, POLICY_REVISION_KEY, (revision) => this.load(revision), now);
  }

  start(pollIntervalMs = 200): Promise<void> {
    return this.poller.start(pollIntervalMs);
  }

  stop(): void {
    this.poller.stop();
  }

  snapshot(): PolicySnapshot {
    return this.current;
  }

  stale(now: number): string | undefined {
    const stale = this.poller.staleness(this.maxStalenessMs, now);
    if (!stale) return undefined;
    return `the role and allow-list view could not be refreshed for ${Math.round(stale.ageMs / 1000)}s (${(stale.error as Error | undefined)?.message ?? "no answer"}); refusing until it can`;
  }

  problems(): ReadonlyMap<string, string> {
    return this.broken;
  }

  refresh(force = false): Promise<void> {
    return this.poller.refresh(force);
  }

  private async load(revision: string): Promise<void> {
    const [roleRows, runtimeRows] = await Promise.all([this.store.db.selectFrom("roles").selectAll().execute(), this.store.db.selectFrom("runtime_allowlist").selectAll().execute()]);
    const previous = this.current.roles;
    const roles = new Map<string, CompiledRole>();
    const broken = new Map<string, string>();
    for (const row of roleRows) {
      const known = previous.get(row.name);
      if (known && known.source === row.source && !this.broken.has(row.name)) {
        roles.set(row.name, known);
        continue;
      }
      try {
        roles.set(row.name, compileRoleSource(row.source, `role ${row.name}`));
      } catch (error) {
        // Fail closed: a role that does not compile denies everything to whoever holds it.
        broken.set(row.name, (error as Error).message);
        roles.set(row.name, brokenRole(row.name, row.source, (error as Error).message));
      }
    }
    const runtime = runtimeFrom(runtimeRows);
    this.current = { revision, roles, runtime: compileRuntimeList(runtime) };
    this.broken = broken;
  }

  /** Validates every document first; then writes all of them in one transaction, or none. */
  async apply(text: string, by: string, origin?: string): Promise<{ result: ApplyResult; roles: ParsedRole[] }> {
    const parsed = parseRoleDocuments(text, origin);
    for (const role of parsed) compileRole(role);
    const t = this.now();
    const result: ApplyResult = { created: [], updated: [], unchanged: [] };
    await this.store.transaction(async (tx) => {
      const existing = await tx.selectFrom("roles").selectAll().where("name", "in", parsed.map((r) => r.document.name)).execute();
      const byName = new Map(existing.map((r) => [r.name, r]));
      for (const role of parsed) {
        const name = role.document.name;
        const before = byName.get(name);
        if (before?.source === role.source) {
          result.unchanged.push(name);
          continue;
        }
        if (before) {
          await tx.updateTable("roles").set({ source: role.source, updated_at: t, updated_by: by }).where("name", "=", name).execute();
          result.updated.push(name);
        } else {
          await tx.insertInto("roles").values({ name, source: role.source, created_at: t, updated_at: t, updated_by: by }).execute();
          result.created.push(name);
        }
      }
      if (result.created.length + result.updated.length > 0) await bumpRevision(tx, POLICY_REVISION_KEY);
    });
    await this.refresh(true);
    return { result, roles: parsed };
  }

  async list(): Promise<StoredRole[]> {
    const rows = await this.store.db.selectFrom("roles").selectAll().orderBy("name").execute();
    return rows.map((row) => this.toStored(row));
  }

  async get(name: string): Promise<StoredRole> {
    const row = await this.store.db.selectFrom("roles").selectAll().where("name", "=", name).executeTakeFirst();
    if (!row) throw new MandateError("NOT_FOUND", `no role named ${name}; see \`mandate roles ls\``);
    return this.toStored(row);
  }

  async remove(name: string): Promise<StoredRole> {
    const role = await this.get(name);
    await this.store.transaction(async (tx) => {
      await tx.deleteFrom("roles").where("name", "=", name).execute();
      await bumpRevision(tx, POLICY_REVISION_KEY);
    });
    await this.refresh(true);
    return role;
  }

  async runtimeList(): Promise<RuntimeEntry[]> {
    const rows = await this.store.db.selectFrom("runtime_allowlist").selectAll().orderBy("effect").orderBy("pattern").execute();
    return rows.map((r) => ({ effect: r.effect, pattern: r.pattern, reason: r.reason, createdAt: iso(r.created_at), createdBy: r.created_by }));
  }

  async addRuntimeEntry(input: { effect: "allow" | "deny"; pattern: string; reason?: string | undefined; by: string }): Promise<RuntimeEntry> {
    const problem = globProblem(input.pattern);
    if (problem) throw new MandateError("POLICY_INVALID", `invalid glob ${JSON.stringify(input.pattern.slice(0, 80))}: ${problem}`);
    const t = this.now();
    await this.store.transaction(async (tx) => {
      const exists = await tx.selectFrom("runtime_allowlist").select("pattern").where("effect", "=", input.effect).where("pattern", "=", input.pattern).executeTakeFirst();
      if (exists) throw new MandateError("ALREADY_EXISTS", `${input.pattern} is already on the runtime ${input.effect === "deny" ? "deny list" : "allow-list"}`);
      await tx.insertInto("runtime_allowlist").values({ effect: input.effect, pattern: input.pattern, reason: input.reason ?? null, created_at: t, created_by: input.by }).execute();
      await bumpRevision(tx, POLICY_REVISION_KEY);
    });
    await this.refresh(true);
    return { effect: input.effect, pattern: input.pattern, reason: input.reason ?? null, createdAt: iso(t), createdBy: input.by };
  }

  async removeRuntimeEntry(effect: "allow" | "deny", pattern: string): Promise<void> {
    await this.store.transaction(async (tx) => {
      const deleted = await tx.deleteFrom("runtime_allowlist").where("effect", "=", effect).where("pattern", "=", pattern).executeTakeFirst();
      if (Number(deleted.numDeletedRows) === 0) throw new MandateError("NOT_FOUND", `${pattern} is not on the runtime ${effect === "deny" ? "deny list" : "allow-list"}; see \`mandate allowlist ls\``);
      await bumpRevision(tx, POLICY_REVISION_KEY);
    });
    await this.refresh(true);
  }

  /** Replaces the whole list (both effects) in one transaction. */
  async setRuntimeList(list: RuntimeList, by: string): Promise<RuntimeEntry[]> {
    for (const pattern of [...list.allow, ...list.deny]) {
      const problem = globProblem(pattern);
      if (problem) throw new MandateError("POLICY_INVALID", `invalid glob ${JSON.stringify(pattern.slice(0, 80))}: ${problem}`);
    }
    const t = this.now();
    await this.store.transaction(async (tx) => {
      await tx.deleteFrom("runtime_allowlist").execute();
      const rows: { effect: "allow" | "deny"; pattern: string }[] = [
        ...[...new Set(list.allow)].map((pattern) => ({ effect: "allow" as const, pattern })),
        ...[...new Set(list.deny)].map((pattern) => ({ effect: "deny" as const, pattern })),
      ];
      if (rows.length > 0) await tx.insertInto("runtime_allowlist").values(rows.map((r) => ({ ...r, reason: null, created_at: t, created_by: by }))).execute();
      await bumpRevision(tx, POLICY_REVISION_KEY);
    });
    await this.refresh(true);
    return this.runtimeList();
  }

  private toStored(row: RoleTable): StoredRole {
    return { name: row.name, description: this.current.roles.get(row.name)?.description, source: row.source, createdAt: iso(row.created_at), updatedAt: iso(row.updated_at), updatedBy: row.updated_by };
  }
}

/** Matches no canonical resource string: what a stored allow entry that no longer compiles becomes. */
const NOTHING = "invalid-entry:never";

function runtimeFrom(rows: RuntimeAllowlistTable[]): RuntimeList {
  const list: RuntimeList = { allow: [], deny: [] };
  for (const row of rows) {
    if (globProblem(row.pattern)) {
      // fail closed: a broken allow entry still makes the list non-empty; a broken deny denies everything
      if (row.effect === "deny") list.deny.push("**");
      else list.allow.push(NOTHING);
      continue;
    }
    (row.effect === "deny" ? list.deny : list.allow).push(row.pattern);
  }
  return list;
}
