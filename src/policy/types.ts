/**
 * The access contract. Every proxy (MCP, LLM, database) describes what a caller is
 * trying to do as an `AccessRequest` and gets back a `Decision`; nothing else in Mandate
 * decides allow or deny. This file holds only shapes, so that the proxies and the
 * policy engine can be built against one agreement.
 *
 * Canonical resource strings (used by delegation scopes such as `--allow 'mcp:k8s/read_*'`,
 * by reasons, and by audit events) are produced by `resourceString()` in the policy module:
 *   mcp:<server>/<tool>                 a tool (MCP tool names cannot contain "/" or ":")
 *   mcp:<server>/prompt:<name>          a prompt
 *   mcp:<server>/resource:<uri>         a resource
 *   mcp:<server>/client:<capability>    a server→client request (sampling, elicitation, roots)
 *   llm:<model>                         a model (the provider is an attribute, matched by roles)
 *   db:<database>/<statement class>     a statement class on a database (dbUser is an attribute)
 *   delegate:<agent>                    delegating to an agent
 */

export type Labels = Record<string, string>;

/** Statement classes the database proxy derives from the real PostgreSQL parse tree. */
export type StatementClass =
  | "select"
  | "insert"
  | "update"
  | "delete"
  | "ddl"
  | "dcl"
  | "copy"
  /** a call of a function not known to be free of side effects */
  | "function"
  | "transaction"
  /** SET, SHOW, RESET, DISCARD and similar session state */
  | "session"
  | "other";

export type McpItemKind = "tool" | "prompt" | "resource" | "client";

export type AccessResource =
  | { kind: "mcp"; server: string; item: McpItemKind; name: string; labels?: Labels }
  | { kind: "llm"; model: string; provider?: string; labels?: Labels }
  | {
      kind: "db";
      database: string;
      /** the database user the caller wants to act as */
      dbUser: string;
      /** every class the statement contains (a CTE with a DELETE inside a SELECT is both) */
      statements: StatementClass[];
      /** schema-qualified where the statement qualifies them */
      tables: string[];
      /** functions called that are not on the side-effect-free list */
      functions: string[];
      labels?: Labels;
    }
  | { kind: "delegate"; agent: string; ttlMs: number; labels?: Labels };

/**
 * What is being done to the resource, e.g. `mcp.tools/call`, `mcp.tools/list`,
 * `mcp.resources/read`, `mcp.prompts/get`, `mcp.sampling/createMessage`, `llm.chat`,
 * `llm.embeddings`, `db.query`, `delegate.create`.
 */
export type AccessAction = string;

export interface AgentPrincipal {
  kind: "agent";
  name: string;
  spiffeId: string;
  instanceId?: string;
  /** resolved from the agent registry by the caller of `authorize`, never from the request */
  roles: string[];
  labels: Labels;
}

export interface UserPrincipal {
  kind: "user";
  name: string;
  roles: string[];
  labels: Labels;
}

export type Principal = AgentPrincipal | UserPrincipal;

/** A delegation scope: canonical resource-string globs. Deny wins over allow. */
export interface DelegationScope {
  allow: string[];
  deny: string[];
  requireApproval: string[];
  /** spend ceiling in US dollars for model traffic under this grant */
  maxSpendUsd?: number;
}

/** One link of a delegation chain, root (a human) first. */
export interface DelegationLink {
  id: string;
  delegator: Principal;
  delegate: string;
  scope: DelegationScope;
  /** milliseconds since the epoch */
  expiresAt: number;
}

/** A delegation as verified and resolved by the delegation module (token checked, grant live). */
export interface ResolvedDelegation {
  id: string;
  task: string;
  /** root first; the last link names the calling agent as its delegate */
  chain: DelegationLink[];
  expiresAt: number;
  revoked: boolean;
}

export interface AccessRequest {
  principal: Principal;
  delegation?: ResolvedDelegation;
  action: AccessAction;
  resource: AccessResource;
  /**
   * Facts for Cedar conditions: tool arguments (`args`), request labels, time. Values are
   * data, never code; the engine passes them to Cedar as a typed context record.
   */
  context?: Record<string, unknown>;
  /** milliseconds since the epoch; defaults to now */
  now?: number;
}

/** The layer of the intersection that refused, so reasons can say who said no. */
export type DecisionLayer = "agent_roles" | "delegator_roles" | "delegation" | "runtime" | "lock" | "approval" | "input";

export type Obligation =
  | { kind: "approval_required"; rule: string; policyId?: string }
  | { kind: "redact"; fields: string[] }
  | { kind: "max_spend"; usd: number; delegationId: string };

export interface Decision {
  allow: boolean;
  /** human-readable, most decisive first: "denied: delegation d-123 does not allow mcp:k8s/kubectl_exec" */
  reasons: string[];
  obligations: Obligation[];
  /** ids of the roles/rules/conditions that produced the decision */
  policyIds: string[];
  deniedBy?: DecisionLayer;
}
