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
  return d ? { id: d.id, delegator: d.delegator, task: d.task, chain: d.chain } : undefined;
}

export function decisionOf(decision: GateDecision | undefined): AuditEventInput["decision"] {
  if (!decision) return undefined;
  return { allow: decision.allow, reasons: decision.reasons, ...(decision.policyIds.length ? { policy: decision.policyIds.join(",") } : {}) };
}

/**
 * The proxy's audit writer. Intents that must be durable before the proxy acts are
 * awaited; group commit batches concurrent ones into one fsync. Everything else
 * (outcomes, list records) is queued and written with the next intent's batch, or
 * within `lingerMs` when no intent comes, so a caller waiting on its intent never also
 * waits for the previous call's outcome to be committed first. A failure to record is
 * reported through `onError`; intents keep failing closed on their own.
 */
export class McpAuditWriter {
  private queued: AuditEventInput[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: AuditLog,
    private readonly onError: (error: unknown, event: AuditEventInput) => void,
    private readonly lingerMs = 20,
    private readonly maxQueued = 512,
  ) {}

  durable(event: AuditEventInput): Promise<AuditEvent> {
    // Same event-loop turn, so the queued records share the intent's commit (and precede it).
    // The intent then waits for their rows too. Measured side by side, both alternatives
    // did worse: outcomes committed after the intent (a batch and a sync of their own, which
    // the next intent's sync waits behind: more CPU per call, no better latency) and outcomes
    // left to the linger timer (hundreds in one batch that the intents behind it wait for:
    // p99 two to three times higher at 64 clients).
    void this.flush();
    return this.log.append(event);
  }

  record(event: AuditEventInput): void {
    this.queued.push(event);
    if (this.queued.length >= this.maxQueued) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.lingerMs);
      this.timer.unref();
    }
  }

  /** Writes what is queued; resolves once each record is committed or reported as failed. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.queued;
    this.queued = [];
    await Promise.all(batch.map((event) => this.log.append(event).catch((error: unknown) => this.onError(error, event))));
  }
}
