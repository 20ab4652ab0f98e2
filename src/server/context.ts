import type { AuditCheckpointer, StoreAuditLog } from "../audit/index.js";
import type { AgentRegistry, LockRegistry, SvidService, TrustDomainAuthority, X509SvidIssuer } from "../identity/index.js";
import type { TokenJoinService } from "../join/index.js";
import type { LlmService } from "../llm/index.js";
import type { AccessGate } from "../policy/index.js";
import type { Registry } from "prom-client";
import type { Store } from "../store/index.js";
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
  svids: SvidService;
  auth: CallerAuthenticator;
  /** mTLS or JWT-SVID callers of the proxies, with the delegation token they present. */
  workloadAuth: WorkloadAuthenticator;
  /** Set once the listener is up. */
  checkpointer?: AuditCheckpointer;
  /** The access gate every proxy asks (set by the access layer). */
  access?: AccessGate;
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
