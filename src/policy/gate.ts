import type { AccessAction, AccessResource, Decision, Principal } from "./types.js";

/**
 * The one call a proxy makes per request. The proxy has authenticated the caller (mTLS
 * X509-SVID or JWT-SVID) and extracted the delegation token it presented, if any; the
 * gate does the rest: resolves the principal's roles from the registry, verifies the
 * delegation token against the caller (a token presented by anyone other than the agent
 * it names is refused), checks revocation and expiry, calls `authorize`, and turns an
 * `approval_required` obligation into a pending access request (or consumes a matching
 * approval). It does not write the proxy's audit event: the proxy records the action
 * with the returned decision and delegation attached (see `AuditEventInput.decision`).
 */
export interface AccessGate {
  authorize(request: GateRequest): Promise<GateDecision>;
}

export interface AuthenticatedCaller {
  kind: "agent" | "admin" | "server" | "workload" | "user";
  spiffeId: string;
  agent?: string | undefined;
  /** a user's name when a person calls with a user session */
  user?: string | undefined;
  instanceId?: string | undefined;
  serialHex?: string | undefined;
  via: "mtls" | "jwt-svid" | "user-session" | "oauth";
  notAfter: Date;
}

export interface GateRequest {
  caller: AuthenticatedCaller;
  /** the raw delegation token, exactly as presented */
  delegationToken?: string | undefined;
  action: AccessAction;
  resource: AccessResource;
  context?: Record<string, unknown>;
  correlation?: { session?: string; request?: string };
}

export interface GateDecision extends Decision {
  principal: Principal;
  /** present when a delegation token was verified; audit events copy it */
  delegation?: {
    id: string;
    task: string;
    /** the root delegator, e.g. `user:alice` */
    delegator: string;
    /** every link, root first, e.g. ["user:alice", "agent:deploy-auditor", "agent:log-reader"] */
    chain: string[];
    expiresAt: number;
  };
  /** set when the decision involves an access request */
  accessRequest?: { id: string; status: "pending" | "approved" | "denied" };
}

/**
 * The decision function (`policy.authorize`): pure and synchronous over a compiled
 * snapshot of the roles, so a proxy's hot path does no I/O. The snapshot is replaced
 * when roles change (a revision counter in the store, as locks do).
 */
export interface PolicyEngine {
  authorize(request: import("./types.js").AccessRequest): Decision;
}
