import { MandateError } from "../errors/index.js";
import type { AgentTable, Store } from "../store/index.js";
import { normalizeSelectors } from "./selectors.js";
import { agentSpiffeId, validateAgentName } from "./spiffe-id.js";

export interface Agent {
  name: string;
  spiffeId: string;
  roles: string[];
  labels: Record<string, string>;
  /** Workload selectors, all of which a local process must match to get this identity. */
  selectors: string[];
  createdAt: string;
  createdBy: string;
}

const LABEL_KEY = /^[a-zA-Z0-9][a-zA-Z0-9._/-]{0,62}$/;
const ROLE_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

export function toAgent(row: AgentTable): Agent {
  return {
    name: row.name,
    spiffeId: row.spiffe_id,
    roles: JSON.parse(row.roles) as string[],
    labels: JSON.parse(row.labels) as Record<string, string>,
    selectors: JSON.parse(row.selectors ?? "[]") as string[],
    createdAt: new Date(row.created_at).toISOString(),
    createdBy: row.created_by,
  };
}

export function validateRoles(roles: string[]): string[] {
  for (const role of roles) {
    if (!ROLE_NAME.test(role)) throw new MandateError("INVALID_ARGUMENT", `invalid role name ${JSON.stringify(role)}`);
  }
  return [...new Set(roles)];
}

export function validateLabels(labels: Record<string, string>): Record<string, string> {
  for (const [key, value] of Object.entries(labels)) {
    if (!LABEL_KEY.test(key)) throw new MandateError("INVALID_ARGUMENT", `invalid label key ${JSON.stringify(key)}`);
    if (typeof value !== "string" || value.length > 253) throw new MandateError("INVALID_ARGUMENT", `invalid value for label ${key}`);
  }
  return labels;
}

/** The registry of agent identities: what may join, and as which SPIFFE ID. */
export class AgentRegistry {
  constructor(
    private readonly store: Store,
    private readonly trustDomain: string,
    private readonly now: () => number = Date.now,
  ) {}

  async create(input: { name: string; roles: string[]; labels: Record<string, string>; selectors?: string[]; createdBy: string }): Promise<Agent> {
    const name = validateAgentName(input.name);
    const row: AgentTable = {
      name,
      spiffe_id: agentSpiffeId(this.trustDomain, name).uri,
      roles: JSON.stringify(validateRoles(input.roles)),
      labels: JSON.stringify(validateLabels(input.labels)),
      created_at: this.now(),
      created_by: input.createdBy,
      selectors: JSON.stringify(normalizeSelectors(input.selectors ?? [])),
    };
    await this.store.transaction(async (tx) => {
      const existing = await tx.selectFrom("agents").select("name").where("name", "=", name).executeTakeFirst();
      if (existing) throw new MandateError("ALREADY_EXISTS", `agent ${name} already exists; use \`mandate agents tokens add ${name}\` for a new join token`);
      await tx.insertInto("agents").values(row).execute();
    });
    return toAgent(row);
  }

  async get(name: string): Promise<Agent> {
    const row = await this.store.db.selectFrom("agents").selectAll().where("name", "=", name).executeTakeFirst();
    if (!row) throw new MandateError("NOT_FOUND", `no agent named ${JSON.stringify(name)}; see \`mandate agents ls\``);
    return toAgent(row);
  }

  /** Replaces the agent's selectors; daemons pick them up at their next renewal. */
  async setSelectors(name: string, selectors: string[]): Promise<Agent> {
    const normalized = normalizeSelectors(selectors);
    const result = await this.store.db.updateTable("agents").set({ selectors: JSON.stringify(normalized) }).where("name", "=", name).executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) throw new MandateError("NOT_FOUND", `no agent named ${JSON.stringify(name)}; see \`mandate agents ls\``);
    return this.get(name);
  }

  async list(): Promise<Agent[]> {
    const rows = await this.store.db.selectFrom("agents").selectAll().orderBy("name").execute();
    return rows.map(toAgent);
  }

  async instances(name: string) {
    const rows = await this.store.db.selectFrom("instances").selectAll().where("agent_name", "=", name).orderBy("created_at").execute();
    return rows.map((r) => ({
      id: r.id,
      hostname: r.hostname,
      joinMethod: r.join_method,
      generation: r.generation,
      createdAt: new Date(r.created_at).toISOString(),
      lastRenewedAt: new Date(r.last_renewed_at).toISOString(),
      svidSerial: r.svid_serial,
      svidExpiresAt: new Date(r.svid_expires_at).toISOString(),
      version: r.version,
    }));
  }

  /** Removes the agent, its unused tokens and instances. Callers lock it first so live credentials die too. */
  async remove(name: string): Promise<Agent> {
    const agent = await this.get(name);
    await this.store.transaction(async (tx) => {
      await tx.deleteFrom("join_tokens").where("agent_name", "=", name).execute();
      await tx.deleteFrom("instances").where("agent_name", "=", name).execute();
      await tx.deleteFrom("agents").where("name", "=", name).execute();
    });
    return agent;
  }
}
