import { MandateError } from "../errors/index.js";
import type { Store } from "../store/index.js";
import type { AuditEvent } from "./event.js";

export interface AuditSearchFilter {
  agent?: string | undefined;
  user?: string | undefined;
  task?: string | undefined;
  type?: string | undefined;
  decision?: "allow" | "deny" | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  limit?: number | undefined;
}

export const MAX_SEARCH_LIMIT = 10_000;

/** Newest first; every filter maps to an indexed column. */
export async function searchAuditEvents(store: Store, filter: AuditSearchFilter): Promise<AuditEvent[]> {
  const limit = filter.limit ?? 100;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_SEARCH_LIMIT) throw new MandateError("INVALID_ARGUMENT", `--limit must be between 1 and ${MAX_SEARCH_LIMIT}`);
  let query = store.db.selectFrom("audit_events").select("body").orderBy("time", "desc").orderBy("seq", "desc").limit(limit);
  if (filter.agent) query = query.where("actor_agent", "=", filter.agent);
  if (filter.user) query = query.where("actor_user", "=", filter.user);
  if (filter.task) query = query.where("task_id", "=", filter.task);
  if (filter.type) query = query.where("type", "=", filter.type);
  if (filter.decision) query = query.where("decision", "=", filter.decision);
  if (filter.since) query = query.where("time", ">=", filter.since.getTime());
  if (filter.until) query = query.where("time", "<", filter.until.getTime());
  const rows = await query.execute();
  return rows.map((r) => JSON.parse(r.body) as AuditEvent);
}
