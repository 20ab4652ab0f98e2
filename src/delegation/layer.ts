import type { AuditLog } from "../audit/index.js";
import type { AgentRegistry, LockRegistry, TrustDomainAuthority } from "../identity/index.js";
import { SvidVerifier } from "../identity/index.js";
import type { AccessGate } from "../policy/index.js";
import type { CallerAuthenticator } from "../server/authenticate.js";
import type { Store } from "../store/index.js";
import type { FastifyInstance } from "fastify";
import { AccessRequests } from "./approvals.js";
import { createAccessGate } from "./gate.js";
import { type AccessPolicy, PrincipalResolver, type UserDirectory } from "./principals.js";
import { DelegationRegistry } from "./registry.js";
import { registerDelegationRoutes } from "./routes.js";
import { DelegationService } from "./service.js";
import { DelegationKeyring } from "./keyring.js";
import { DelegationTokens } from "./token.js";
import { registerTokenRoutes } from "./token-routes.js";

export interface DelegationLayerOptions {
  store: Store;
  authority: TrustDomainAuthority;
  agents: AgentRegistry;
  locks: LockRegistry;
  audit: AuditLog;
  auth: CallerAuthenticator;
  /** looked up per call: the policy and user modules may be wired after this layer */
  policy: () => AccessPolicy | undefined;
  users: () => UserDirectory | undefined;
  /** this trust domain's proxy audiences; the first is the default audience of delegation tokens */
  audiences: () => string[];
  pollIntervalMs?: number | undefined;
  maxDepth?: number | undefined;
  now?: () => number;
}

export interface DelegationLayer {
  service: DelegationService;
  requests: AccessRequests;
  principals: PrincipalResolver;
  gate: AccessGate;
  registerRoutes(app: FastifyInstance): void;
  stop(): void;
}

/** Grants, tokens, approvals and the access gate over one store, started together. */
export async function startDelegationLayer(o: DelegationLayerOptions): Promise<DelegationLayer> {
  const now = o.now ?? Date.now;
  const trustDomain = o.authority.trustDomain;
  const registry = new DelegationRegistry(o.store, now);
  await registry.start(o.pollIntervalMs ?? 200);
  const tokens = new DelegationTokens(await DelegationKeyring.open(o.store, now), `spiffe://${trustDomain}/mandate/server`, now);
  const principals = new PrincipalResolver(o.agents, o.users, trustDomain, now);
  const service = new DelegationService({ registry, tokens, principals, agents: o.agents, locks: o.locks, audit: o.audit, policy: o.policy, maxDepth: o.maxDepth, now });
  const requests = new AccessRequests(o.store, now);
  const gate = createAccessGate({ delegations: service, principals, requests, audit: o.audit, policy: o.policy, audiences: o.audiences, now });
  const verifier = new SvidVerifier(o.authority, o.locks);
  return {
    service,
    requests,
    principals,
    gate,
    registerRoutes(app) {
      registerTokenRoutes(app, { delegations: service, principals, auth: o.auth, verifier, audit: o.audit, audiences: o.audiences, now });
      registerDelegationRoutes(app, { delegations: service, requests, principals, auth: o.auth, audit: o.audit, policy: o.policy, now });
    },
    stop: () => registry.stop(),
  };
}
