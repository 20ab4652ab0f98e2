import type { DelegationScope } from "../policy/index.js";

export type DelegatorKind = "user" | "agent";

/** A delegation grant as stored: one link of a chain. */
export interface Grant {
  id: string;
  parentId: string | null;
  rootId: string;
  /** 1 for a grant made by a person, parent's depth + 1 for a sub-delegation */
  depth: number;
  task: string;
  delegator: { kind: DelegatorKind; name: string };
  /** the agent the grant is given to */
  agent: string;
  scope: DelegationScope;
  createdBy: string;
  createdAt: number;
  expiresAt: number;
  revokedAt: number | null;
  revokedBy: string | null;
  revokeReason: string | null;
}

export type GrantStatus = "active" | "expired" | "revoked";

export interface NewGrant {
  agent: string;
  /** required for a grant from a person; a sub-delegation serves its parent's task */
  task?: string | undefined;
  ttlMs: number;
  scope: DelegationScope;
  parentId?: string | undefined;
}

/** Who is making a grant, as authenticated by the API. */
export type GrantingCaller =
  | { kind: "user"; name: string; spiffeId: string }
  | { kind: "agent"; name: string; spiffeId: string }
  /** an admin acting for a named user: the grant is checked against that user's access */
  | { kind: "admin"; spiffeId: string; onBehalfOf: string };

export type AccessRequestStatus = "pending" | "approved" | "denied" | "consumed" | "expired";

export interface AccessRequestRecord {
  id: string;
  status: AccessRequestStatus;
  requester: { kind: "agent" | "user"; name: string };
  delegationId: string | null;
  task: string | null;
  action: string;
  resource: string;
  argsHash: string | null;
  rule: string;
  createdAt: number;
  expiresAt: number;
  decidedAt: number | null;
  decidedBy: string | null;
  decisionReason: string | null;
  /** once: one call; window: any matching call until validUntil */
  mode: "once" | "window" | null;
  validUntil: number | null;
  usedAt: number | null;
  uses: number;
}
