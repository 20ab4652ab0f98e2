import type { AuditActor, AuditDelegation, AuditEvent, AuditEventInput, AuditLog } from "../audit/index.js";
import type { GateDecision } from "../policy/index.js";
import type { CallerCredentials } from "./types.js";

/** The audit actor for a proxy caller: agent, instance and SPIFFE ID, never the credential. */
export function actorOf(credentials: CallerCredentials): AuditActor {
  const caller = credentials.caller;
  const kind = caller.kind === "agent" ? "agent" : caller.kind === "admin" ? "admin" : caller.kind === "user" ? "user" : "anonymous";
  return {
    kind,
    spiffeId: caller.spiffeId,
    ...(caller.agent ? { agent: caller.agent } : {}),
    ...(caller.instanceId ? { instance: caller.instanceId } : {}),
    ...(caller.user ? { user: caller.user } : {}),
    ...(credentials.address ? { address: credentials.address } : {}),
  };
}

export function delegationOf(decision: GateDecision | undefined): AuditDelegation | undefined {
  const d = decision?.delegation;
  return d ? { id: d.id, delegator: d.delegator, task: d.task } : undefined;
}

export function decisionOf(decision: GateDecision | undefined): AuditEventInput["decision"] {
  if (!decision) return undefined;
  return { allow: decision.allow, reasons: decision.reasons, ...(decision.policyIds.length ? { policy: decision.policyIds.join(",") } : {}) };
}

/**
 * The proxy's audit writer. Intents that must be durable before the proxy acts are
 * awaited (group commit batches concurrent ones into one fsync); everything else is
 * appended without holding the caller, and a failure to record is reported through
 * `onError`, after which intents keep failing closed on their own.
 */
export class McpAuditWriter {
  constructor(
    private readonly log: AuditLog,
    private readonly onError: (error: unknown, event: AuditEventInput) => void,
  ) {}

  durable(event: AuditEventInput): Promise<AuditEvent> {
    return this.log.append(event);
  }

  record(event: AuditEventInput): void {
    this.log.append(event).catch((error: unknown) => this.onError(error, event));
  }
}
