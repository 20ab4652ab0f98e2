import type { Store } from "../store/index.js";
import type { AuditEvent } from "./event.js";

export interface TraceNode {
  event: AuditEvent;
  children: TraceNode[];
}

export interface AuditTrace {
  /** The task, delegation or session the trace was asked for. */
  subject: string;
  events: number;
  roots: TraceNode[];
  /** Text kept beside the log for some events (a model request's prompt and response), by event id. */
  attachments?: Record<string, Record<string, string>>;
}

const MAX_TRACE_EVENTS = 10_000;

/**
 * Everything recorded under one task, delegation or session, as a tree: an event hangs
 * under its `correlation.parentEvent` when that event is part of the trace, otherwise it
 * is a root. Siblings stay in time order, so the tree reads as the story of the task.
 */
export async function traceAudit(store: Store, subject: string): Promise<AuditTrace> {
  const rows = await store.db
    .selectFrom("audit_events")
    .select(["body", "seq"])
    .where((eb) => eb.or([eb("task_id", "=", subject), eb("delegation_id", "=", subject), eb("session_id", "=", subject)]))
    .orderBy("time")
    .orderBy("seq")
    .limit(MAX_TRACE_EVENTS)
    .execute();
  const nodes = rows.map((r) => ({ event: JSON.parse(r.body) as AuditEvent, children: [] as TraceNode[] }));
  const byId = new Map(nodes.map((n) => [n.event.id, n]));
  const roots: TraceNode[] = [];
  for (const node of nodes) {
    const parent = node.event.correlation?.parentEvent ? byId.get(node.event.correlation.parentEvent) : undefined;
    if (parent && parent !== node) parent.children.push(node);
    else roots.push(node);
  }
  return { subject, events: nodes.length, roots };
}

/** One line per event, indented by depth: time, type, who, what, and the decision with its reasons. */
export function formatTrace(trace: AuditTrace): string {
  const lines = [`trace ${trace.subject} (${trace.events} event${trace.events === 1 ? "" : "s"})`];
  const describe = (e: AuditEvent): string => {
    const who = e.actor.agent ?? e.actor.user ?? e.actor.spiffeId ?? e.actor.kind;
    const what = e.target ? Object.entries(e.target).map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`).join(" ") : "";
    const decision = e.decision ? ` ${e.decision.allow ? "ALLOW" : "DENY"}${e.decision.reasons.length ? ` (${e.decision.reasons.join("; ")})` : ""}` : "";
    const outcome = e.outcome.status === "error" ? ` error ${e.outcome.error ?? ""}${e.outcome.message ? `: ${e.outcome.message}` : ""}` : "";
    return `${e.time}  ${e.type}  ${who}${what ? `  ${what}` : ""}${decision}${outcome}`;
  };
  const walk = (node: TraceNode, prefix: string, last: boolean, depth: number) => {
    lines.push(`${prefix}${depth === 0 ? "" : last ? "└─ " : "├─ "}${describe(node.event)}`);
    const childPrefix = depth === 0 ? prefix : `${prefix}${last ? "   " : "│  "}`;
    for (const [name, text] of Object.entries(trace.attachments?.[node.event.id] ?? {})) {
      const shown = text.length > 400 ? `${text.slice(0, 400)}…` : text;
      lines.push(`${depth === 0 ? "  " : `${childPrefix}   `}${name}: ${JSON.stringify(shown)}`);
    }
    node.children.forEach((child, i) => walk(child, depth === 0 ? "  " : childPrefix, i === node.children.length - 1, depth + 1));
  };
  for (const root of trace.roots) walk(root, "", true, 0);
  return lines.join("\n");
}
