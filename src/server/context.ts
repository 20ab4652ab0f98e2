import type { AuditCheckpointer, StoreAuditLog } from "../audit/index.js";
import type { AgentRegistry, LockRegistry, SvidService, TrustDomainAuthority, X509SvidIssuer } from "../identity/index.js";
import type { AttestedJoinService, JoinRuleRegistry, TokenJoinService } from "../join/index.js";
import type { DelegationLayer } from "../delegation/index.js";
import type { DefinitionPins, McpCatalog, McpProxy } from "../mcp/index.js";
import type { AccessGate, MandatePolicyEngine, RoleRegistry } from "../policy/index.js";
import type { LlmService } from "../llm/index.js";
import type { DbService } from "../db/index.js";
import type { Registry } from "prom-client";
import type { Store } from "../store/index.js";
import type { UserLoginService, UserRegistry } from "../users/index.js";
import type { CallerAuthenticator } from "./authenticate.js";
import type { WorkloadAuthenticator } from "./workload-auth.js";

/** Everything a route needs, built once at start. */
export interface ServerContext {
  store: Store;
  authority: TrustDomainAuthority;
  issuer: X509SvidIssuer;
  locks: LockRegistry;
  audit: StoreAuditLog;
  agents: AgentRegistry;
  joins: TokenJoinService;
  /** Join rules for token-less joins (Kubernetes, GitHub Actions, OIDC). */
  joinRules?: JoinRuleRegistry;
  attestedJoins?: AttestedJoinService;
  svids: SvidService;
  auth: CallerAuthenticator;
  /** mTLS or JWT-SVID callers of the proxies, with the delegation token they present. */
  workloadAuth: WorkloadAuthenticator;
  /** The access layer; every proxy decision goes through it (absent: proxies deny everything). */
  access?: AccessGate;
  /** The policy engine (`authorize`, `mayApprove`) over a compiled snapshot of the roles and the runtime allow-list held by `registry`. */
  policy?: MandatePolicyEngine & { registry: RoleRegistry };
  /** Delegation grants, tokens, access requests and the gate built on them. */
  delegation?: DelegationLayer;
  /** The MCP catalog, definition pins and proxy. */
  mcp?: { catalog: McpCatalog; pins: DefinitionPins; proxy: McpProxy };
  /** People: `users.get(name)` resolves a user principal (roles, labels, disabled). */
  users?: UserRegistry;
  /** Logins (password + TOTP, SSO) that end in a user certificate. */
  userLogin?: UserLoginService;
  /** Set once the listener is up. */
  checkpointer?: AuditCheckpointer;
  /** The database proxy: registry, audit journal and the PostgreSQL listener. */
  db?: DbService;
  /** The LLM proxy, when it is enabled. */
  llm?: LlmService;
  /** Prometheus metrics every module registers on (served at GET /metrics). */
  metrics: Registry;
  settings: {
    svidTtlMs: number;
    jwtTtlMs: number;
    jwtMaxTtlMs: number;
    joinTokenTtlMs: number;
    publicUrl: string;
    /** Audiences a JWT-SVID may name to reach the proxies (the server's SPIFFE ID, its URLs, --proxy-audience). */
    proxyAudiences: string[];
  };
  now: () => number;
}
