import { createHash } from "node:crypto";
import { type AuditLog, canonicalJson, ulid } from "../audit/index.js";
import { MandateError } from "../errors/index.js";
import type { Store } from "../store/index.js";
import type { McpDefinitionTable } from "../store/schema.js";
import type { McpServerEntry } from "./catalog.js";
import { type Finding, scanDefinition } from "./poison.js";

export type DefinitionKind = "tool" | "prompt" | "resource";
export type DefinitionStatus = "approved" | "pending" | "rejected";

export interface DefinitionRecord {
  id: string;
  server: string;
  kind: DefinitionKind;
  name: string;
  hash: string;
  definition: Record<string, unknown>;
  status: DefinitionStatus;
  findings: Finding[];
  firstSeenAt: string;
  decidedAt: string | null;
  decidedBy: string | null;
  previousHash: string | null;
  /** top-level fields that differ from the previously approved definition */
  changed?: string[];
}

/** The identity of a definition inside its server: a tool's or prompt's name, a resource's URI or URI template. */
export function definitionName(kind: DefinitionKind, definition: Record<string, unknown>): string | undefined {
  const key = kind === "resource" ? (definition.uri ?? definition.uriTemplate) : definition.name;
  return typeof key === "string" && key.length > 0 && key.length <= 2048 ? key : undefined;
}

/**
 * SHA-256 over the RFC 8785 form of the whole definition (name, title, description,
 * input and output schemas, annotations, and anything else), `_meta` aside: hashing only
 * the description would miss a schema change or a rename.
 */
export function definitionHash(definition: Record<string, unknown>): string {
  const { _meta: _ignored, ...rest } = definition;
  return `sha256:${createHash("sha256").update(canonicalJson(rest)).digest("hex")}`;
}

function changedFields(before: Record<string, unknown> | undefined, after: Record<string, unknown>): string[] {
  if (!before) return ["(new)"];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  keys.delete("_meta");
  return [...keys].filter((k) => canonicalJson(before[k] ?? null) !== canonicalJson(after[k] ?? null)).sort();
}

function toRecord(row: McpDefinitionTable): DefinitionRecord {
  return {
    id: row.id,
    server: row.server,
    kind: row.kind,
    name: row.name,
    hash: row.hash,
    definition: JSON.parse(row.definition) as Record<string, unknown>,
    status: row.status,
    findings: JSON.parse(row.findings) as Finding[],
    firstSeenAt: new Date(Number(row.first_seen_at)).toISOString(),
    decidedAt: row.decided_at === null ? null : new Date(Number(row.decided_at)).toISOString(),
    decidedBy: row.decided_by,
    previousHash: row.previous_hash,
  };
}

interface NameState {
  byHash: Map<string, { status: DefinitionStatus; definition: Record<string, unknown> }>;
  latest: string;
}

type ServerState = Map<string, NameState>;

export type Visibility = "visible" | "hidden";

/**
 * Pinning and drift ("rug pull" protection). Every definition a server shows is pinned
 * by its hash. The first listing of a kind is the baseline (trusted on first use unless
 * it carries high-severity poisoning findings); after that a changed or new definition is
 * a drift event and, unless the server is in alert-only mode, stays hidden until approved.
 */
export class DefinitionPins {
  private readonly servers = new Map<string, Promise<ServerState>>();

  constructor(
    private readonly store: Store,
    private readonly audit: AuditLog,
    private readonly now: () => number = Date.now,
  ) {}

  private state(server: string): Promise<ServerState> {
    let loading = this.servers.get(server);
    if (!loading) {
      loading = (async () => {
        const rows = await this.store.db.selectFrom("mcp_definitions").selectAll().where("server", "=", server).orderBy("first_seen_at").execute();
        const state: ServerState = new Map();
        for (const row of rows) {
          const key = `${row.kind}:${row.name}`;
          const entry = state.get(key) ?? { byHash: new Map(), latest: row.hash };
          entry.byHash.set(row.hash, { status: row.status, definition: JSON.parse(row.definition) as Record<string, unknown> });
          entry.latest = row.hash;
          state.set(key, entry);
        }
        return state;
      })();
      loading.catch(() => this.servers.delete(server));
      this.servers.set(server, loading);
    }
    return loading;
  }

  /** Forgets a server (removed from the catalog); its history stays in the store. */
  forget(server: string): void {
    this.servers.delete(server);
  }

  private visibility(server: McpServerEntry, status: DefinitionStatus): Visibility {
    if (status === "approved") return "visible";
    if (status === "rejected") return "hidden";
    return server.driftMode === "alert" ? "visible" : "hidden";
  }

  /** Records one page of definitions and says which of them the caller may see. */
  async observe(server: McpServerEntry, kind: DefinitionKind, items: Record<string, unknown>[], correlation: { session?: string } = {}): Promise<Visibility[]> {
    const state = await this.state(server.name);
    const baseline = ![...state.keys()].some((k) => k.startsWith(`${kind}:`));
    const out: Visibility[] = [];
    for (const item of items) {
      const name = definitionName(kind, item);
      if (name === undefined) {
        out.push("hidden");
        continue;
      }
      const hash = definitionHash(item);
      const key = `${kind}:${name}`;
      const entry = state.get(key);
      const known = entry?.byHash.get(hash);
      if (entry) entry.latest = hash;
      if (known) {
        out.push(this.visibility(server, known.status));
        continue;
      }
      out.push(this.visibility(server, await this.record(server, kind, name, hash, item, baseline, state, correlation)));
    }
    return out;
  }

  private async record(server: McpServerEntry, kind: DefinitionKind, name: string, hash: string, item: Record<string, unknown>, baseline: boolean, state: ServerState, correlation: { session?: string }): Promise<DefinitionStatus> {
    const key = `${kind}:${name}`;
    const entry = state.get(key);
    const previous = entry ? [...entry.byHash.entries()].reverse().find(([, v]) => v.status === "approved") : undefined;
    const findings = scanDefinition(item);
    const poisoned = findings.some((f) => f.severity === "high");
    const status: DefinitionStatus = baseline && !poisoned ? "approved" : "pending";
    const now = this.now();
    const row: McpDefinitionTable = {
      id: `def_${ulid(now)}`,
      server: server.name,
      kind,
      name,
      hash,
      definition: JSON.stringify(item),
      status,
      findings: JSON.stringify(findings),
      first_seen_at: now,
      decided_at: status === "approved" ? now : null,
      decided_by: status === "approved" ? `trust-on-first-use (server registered by ${server.createdBy})` : null,
      previous_hash: previous?.[0] ?? null,
    };
    const updated = entry ?? { byHash: new Map(), latest: hash };
    updated.byHash.set(hash, { status, definition: item });
    updated.latest = hash;
    state.set(key, updated);
    const changed = changedFields(previous?.[1].definition, item);
    await this.store.writeDurably(async (tx) => {
      const inserted = await tx.insertInto("mcp_definitions").values(row).onConflict((oc) => oc.columns(["server", "kind", "name", "hash"]).doNothing()).executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0) === 0) return;
      const target = { server: server.name, kind, name, definition: row.id };
      const alert = (type: string, code: string, message: string, details: Record<string, unknown>) =>
        this.audit.appendInTransaction(tx, { type, code, actor: { kind: "system" }, correlation, target, outcome: { status: "ok", message }, details });
      if (!baseline) {
        const what = previous ? `changed (${changed.join(", ")})` : "is new";
        await alert("mcp.drift", previous ? "DEFINITION_CHANGED" : "DEFINITION_ADDED", `${kind} ${name} on ${server.name} ${what}; ${server.driftMode === "hide" ? "hidden until approved" : "alert only"}: mandate mcp drift approve ${row.id}`, {
          alert: true,
          previousHash: previous?.[0] ?? null,
          hash,
          changed,
          driftMode: server.driftMode,
          findings,
        });
      }
      if (findings.length) {
        await alert("mcp.poisoning", poisoned ? "POISONING_SUSPECTED" : "POISONING_FLAGGED", `${findings.length} finding(s) in the ${kind} definition${poisoned ? "; held for review" : ""}`, { alert: poisoned, findings });
      }
    });
    return status;
  }

  /** Whether `name` may be used now: its latest seen definition decides. `unknown` when never seen. */
  async check(server: McpServerEntry, kind: DefinitionKind, name: string): Promise<{ visibility: Visibility | "unknown"; status?: DefinitionStatus; id?: string }> {
    const state = await this.state(server.name);
    const entry = state.get(`${kind}:${name}`);
    if (!entry) return { visibility: "unknown" };
    const latest = entry.byHash.get(entry.latest)!;
    return { visibility: this.visibility(server, latest.status), status: latest.status };
  }

  /** The latest definition seen for a name (the x-mcp-header declarations of a tool come from here). */
  async definition(server: string, kind: DefinitionKind, name: string): Promise<Record<string, unknown> | undefined> {
    const entry = (await this.state(server)).get(`${kind}:${name}`);
    return entry?.byHash.get(entry.latest)?.definition;
  }

  /** True once any definition of `kind` has been seen for the server. */
  async hasBaseline(server: string, kind: DefinitionKind): Promise<boolean> {
    const state = await this.state(server);
    return [...state.keys()].some((k) => k.startsWith(`${kind}:`));
  }

  async list(filter: { server?: string | undefined; status?: DefinitionStatus | undefined } = {}): Promise<DefinitionRecord[]> {
    let query = this.store.db.selectFrom("mcp_definitions").selectAll();
    if (filter.server) query = query.where("server", "=", filter.server);
    if (filter.status) query = query.where("status", "=", filter.status);
    const rows = await query.orderBy("first_seen_at").limit(1000).execute();
    const records = rows.map(toRecord);
    const approvedByHash = new Map(rows.map((r) => [`${r.server}|${r.kind}|${r.name}|${r.hash}`, r]));
    for (const record of records) {
      if (!record.previousHash) continue;
      const before = approvedByHash.get(`${record.server}|${record.kind}|${record.name}|${record.previousHash}`);
      record.changed = changedFields(before ? (JSON.parse(before.definition) as Record<string, unknown>) : undefined, record.definition);
    }
    return records;
  }

  async decide(id: string, status: "approved" | "rejected", by: string): Promise<DefinitionRecord> {
    const row = await this.store.db.selectFrom("mcp_definitions").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new MandateError("NOT_FOUND", `no definition ${id}; see \`mandate mcp drift ls\``);
    const now = this.now();
    await this.store.writeDurably(async (tx) => {
      await tx.updateTable("mcp_definitions").set({ status, decided_at: now, decided_by: by }).where("id", "=", id).execute();
      await this.audit.appendInTransaction(tx, {
        type: `mcp.drift.${status === "approved" ? "approve" : "reject"}`,
        code: "OK",
        actor: { kind: "admin", spiffeId: by },
        target: { server: row.server, kind: row.kind, name: row.name, definition: id },
        outcome: { status: "ok" },
        details: { hash: row.hash, previousHash: row.previous_hash },
      });
    });
    const state = this.servers.get(row.server);
    if (state) {
      const loaded = await state;
      loaded.get(`${row.kind}:${row.name}`)?.byHash.set(row.hash, { status, definition: JSON.parse(row.definition) as Record<string, unknown> });
    }
    return toRecord({ ...row, status, decided_at: now, decided_by: by });
  }
}
