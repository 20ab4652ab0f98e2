import type { AuditActor, AuditLog } from "../audit/index.js";
import { MandateError, isMandateError } from "../errors/index.js";
import { type AgentRegistry, type IssuedX509Svid, type LockRegistry, type TrustDomainAuthority, type X509SvidIssuer, assertCsrRequestsOnly, parseCsr } from "../identity/index.js";
import type { Store } from "../store/index.js";
import { enrollInstance, newInstanceId } from "./enroll.js";
import { generateJoinToken, hashJoinSecret, parseJoinToken } from "./join-token.js";

export interface JoinRequest {
  token: string;
  csr: string;
  hostname?: string | undefined;
  version?: string | undefined;
  address?: string | undefined;
}

export interface JoinResult {
  instanceId: string;
  agent: string;
  svid: IssuedX509Svid;
}

export const DEFAULT_JOIN_TOKEN_TTL_MS = 30 * 60_000;

/**
 * Join with a one-time token. The token proves the host was enrolled by an admin;
 * the CSR proves it holds the private key (generated on the host, never sent).
 */
export class TokenJoinService {
  constructor(
    private readonly deps: {
      store: Store;
      authority: TrustDomainAuthority;
      issuer: X509SvidIssuer;
      agents: AgentRegistry;
      locks: LockRegistry;
      audit: AuditLog;
      svidTtlMs: number;
      now?: () => number;
    },
  ) {}

  private get now(): number {
    return (this.deps.now ?? Date.now)();
  }

  async createToken(agentName: string, ttlMs: number, createdBy: string): Promise<{ token: string; expiresAt: Date }> {
    await this.deps.agents.get(agentName);
    if (!(ttlMs > 0) || ttlMs > 7 * 24 * 3600_000) throw new MandateError("INVALID_ARGUMENT", "join token TTL must be between 1s and 7 days");
    const { token, secretHash } = generateJoinToken(this.deps.authority.caPin);
    const t = this.now;
    await this.deps.store.transaction(async (tx) => {
      await tx.insertInto("join_tokens").values({ token_hash: secretHash, agent_name: agentName, expires_at: t + ttlMs, created_at: t, created_by: createdBy, used_at: null, used_by_instance: null }).execute();
    });
    await this.deps.audit.append({
      type: "join_token.create",
      code: "OK",
      actor: { kind: "admin", spiffeId: createdBy },
      target: { agent: agentName, expiresAt: new Date(t + ttlMs).toISOString() },
      outcome: { status: "ok" },
    });
    return { token, expiresAt: new Date(t + ttlMs) };
  }

  async join(request: JoinRequest): Promise<JoinResult> {
    const actor: AuditActor = { kind: "anonymous", ...(request.address ? { address: request.address } : {}) };
    try {
      return await this.joinUnaudited(request, actor);
    } catch (error) {
      const code = isMandateError(error) ? error.code : "INTERNAL";
      // A failed join is evidence (guessing, replay): record it, but a store outage must not mask the original error.
      await this.deps.audit
        .append({ type: "identity.join", code, actor, outcome: { status: "error", error: code, message: (error as Error).message } })
        .catch(() => undefined);
      throw error;
    }
  }

  private async joinUnaudited(request: JoinRequest, actor: AuditActor): Promise<JoinResult> {
    const { secret, caPin } = parseToken(request.token);
    if (caPin && caPin !== this.deps.authority.caPin) {
      throw new MandateError("INVALID_JOIN_TOKEN", "the join token was issued by another trust domain (its CA pin does not match this server)");
    }
    // Validate the CSR before spending the token, so a client bug does not burn it.
    const csr = parseCsr(request.csr);
    await this.deps.issuer.verifyCsr(csr);
    const hostname = (request.hostname ?? "").slice(0, 253) || "unknown";
    const t = this.now;
    const hash = hashJoinSecret(secret);
    const instanceId = newInstanceId();
    const row = await this.deps.store.db.selectFrom("join_tokens").selectAll().where("token_hash", "=", hash).executeTakeFirst();
    if (!row) throw new MandateError("INVALID_JOIN_TOKEN", "unknown join token; ask an admin for a new one (`mandate agents tokens add NAME`)");
    if (row.used_at !== null) throw new MandateError("JOIN_TOKEN_USED", "this join token was already used; tokens are single-use");
    if (row.expires_at <= t) throw new MandateError("JOIN_TOKEN_EXPIRED", `this join token expired at ${new Date(row.expires_at).toISOString()}`);
    const agent = await this.deps.agents.get(row.agent_name);
    this.deps.locks.assertNotLocked({ spiffeId: agent.spiffeId, agent: agent.name, instanceId });
    // Everything that can be refused is refused before the token is spent, so a bad request does not burn it.
    assertCsrRequestsOnly(csr, agent.spiffeId);
    await this.deps.store.transaction(async (tx) => {
      const consumed = await tx
        .updateTable("join_tokens")
        .set({ used_at: t, used_by_instance: instanceId })
        .where("token_hash", "=", hash)
        .where("used_at", "is", null)
        .where("expires_at", ">", t)
        .executeTakeFirst();
      if (Number(consumed.numUpdatedRows) !== 1) throw new MandateError("JOIN_TOKEN_USED", "this join token was already used; tokens are single-use");
    });
    const svid = await enrollInstance({
      issuer: this.deps.issuer,
      agent,
      csr,
      instanceId,
      method: "token",
      hostname,
      version: (request.version ?? "").slice(0, 64),
      ttlMs: this.deps.svidTtlMs,
      now: t,
      actor,
    });
    return { instanceId, agent: agent.name, svid };
  }
}

function parseToken(token: string): { secret: string; caPin?: string } {
  if (typeof token !== "string" || token.length === 0 || token.length > 512) throw new MandateError("INVALID_JOIN_TOKEN", "missing or oversized join token");
  return parseJoinToken(token);
}
