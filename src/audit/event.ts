/**
 * The audit event shape every module writes. The durable, tamper-evident log
 * is built on this shape; fields are added, never renamed.
 */
export type ActorKind = "agent" | "user" | "admin" | "system" | "anonymous";

export interface AuditActor {
  kind: ActorKind;
  spiffeId?: string;
  agent?: string;
  instance?: string;
  user?: string;
  /** Where the request came from (remote address). */
  address?: string;
}

export interface AuditDelegation {
  id: string;
  delegator: string;
  task: string;
  /** every link, root first, e.g. ["user:alice", "agent:deploy-auditor"] */
  chain?: string[];
}

export interface AuditCorrelation {
  task?: string;
  session?: string;
  request?: string;
  parentEvent?: string;
}

export interface AuditDecision {
  allow: boolean;
  policy?: string;
  reasons: string[];
}

export interface AuditOutcome {
  status: "ok" | "error";
  /** The stable error code when status is "error". */
  error?: string;
  message?: string;
  latencyMs?: number;
}

export interface AuditEventInput {
  /** e.g. identity.join, identity.renew, identity.jwt, lock.create, agent.create … */
  type: string;
  /** A stable code for the result: OK, or the MandateError code. */
  code: string;
  actor: AuditActor;
  delegation?: AuditDelegation;
  correlation?: AuditCorrelation;
  target?: Record<string, unknown>;
  decision?: AuditDecision;
  outcome: AuditOutcome;
  details?: Record<string, unknown>;
}

export interface AuditEvent extends AuditEventInput {
  /** Present when values were removed or hashed before writing: which paths, never what they held. */
  redacted?: { paths: string[] };
  id: string;
  /** RFC 3339 time with milliseconds. */
  time: string;
}
