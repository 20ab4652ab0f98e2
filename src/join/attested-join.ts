import { createHash } from "node:crypto";
import type { AuditActor, AuditLog } from "../audit/index.js";
import { MandateError, isMandateError } from "../errors/index.js";
import { type AgentRegistry, type LockRegistry, type X509SvidIssuer, assertCsrRequestsOnly, parseCsr } from "../identity/index.js";
import type { Store } from "../store/index.js";
import { type AttestedJoinMethod, claimsAllowed, claimsOfInterest } from "./claim-rules.js";
import { enrollInstance, newInstanceId } from "./enroll.js";
import type { JoinRule, JoinRuleRegistry } from "./join-rules.js";
import { type JoinTokenVerifier, unverifiedIssuer } from "./oidc-token.js";
import type { JoinResult } from "./token-join.js";

export interface AttestedJoinRequest {
  method: AttestedJoinMethod;
  token: string;
  csr: string;
  /** Picks among rules of several agents that the same token would satisfy. */
  agent?: string | undefined;
  hostname?: string | undefined;
  version?: string | undefined;
  address?: string | undefined;
}

/** Keys under which a used token is remembered until it expires: its hash, and its jti when it has one. */
function replayKeys(token: string, issuer: string, jti: unknown): string[] {
  const keys = [`sha256:${createHash("sha256").update(token).digest("hex")}`];
  if (typeof jti === "string" && jti.length > 0) keys.push(`jti:${createHash("sha256").update(`${issuer}\n${jti}`).digest("hex")}`);
  return keys;
}

/**
 * Join without a Mandate token: the host presents a token its platform minted for it (a
 * Kubernetes projected service-account token, a GitHub Actions or GitLab CI OIDC token),
 * verified against a join rule's issuer, audience and keys, then its claims against the
 * rule's conditions. Each token joins at most once: its jti and hash are remembered until
 * it expires; everything that can be refused is checked before the token is spent.
 */
export class AttestedJoinService {
  constructor(
    private readonly deps: {
      store: Store;
      issuer: X509SvidIssuer;
      agents: AgentRegistry;
      rules: JoinRuleRegistry;
      verifier: JoinTokenVerifier;
      locks: LockRegistry;
      audit: AuditLog;
      svidTtlMs: number;
      now?: () => number;
    },
  ) {}

  private get now(): number {
    return (this.deps.now ?? Date.now)();
  }

  async join(request: AttestedJoinRequest): Promise<JoinResult> {
    const actor: AuditActor = { kind: "anonymous", ...(request.address ? { address: request.address } : {}) };
    const evidence: Record<string, unknown> = { method: request.method };
    try {
      return await this.joinUnaudited(request, actor, evidence);
    } catch (error) {
      const code = isMandateError(error) ? error.code : "INTERNAL";
      await this.deps.audit
        .append({ type: "identity.join", code, actor, outcome: { status: "error", error: code, message: (error as Error).message }, details: evidence })
        .catch(() => undefined);
      throw error;
    }
  }

  private async joinUnaudited(request: AttestedJoinRequest, actor: AuditActor, evidence: Record<string, unknown>): Promise<JoinResult> {
    const claimedIssuer = unverifiedIssuer(request.token);
    // Unverified until a rule's keys say otherwise: recorded as a claim, not as a fact.
    evidence.claimedIssuer = claimedIssuer.slice(0, 256);
    let rules = await this.deps.rules.forIssuer(request.method, claimedIssuer);
    if (request.agent) rules = rules.filter((rule) => rule.agent === request.agent);
    if (rules.length === 0) {
      throw new MandateError("INVALID_JOIN_TOKEN", `no ${request.method} join rule trusts issuer ${JSON.stringify(claimedIssuer.slice(0, 256))}${request.agent ? ` for agent ${request.agent}` : ""}; an admin adds one with \`mandate joins add\``);
    }
    const csr = parseCsr(request.csr);
    await this.deps.issuer.verifyCsr(csr);

    // Rules of one issuer may use different keys or audiences: the first that verifies decides the error otherwise reported.
    let verified: { rule: JoinRule; claims: Record<string, unknown> } | undefined;
    let firstError: unknown;
    const allowedBy: JoinRule[] = [];
    for (const rule of rules) {
      let claims: Record<string, unknown>;
      try {
        claims = (await this.deps.verifier.verify(rule, request.token)) as Record<string, unknown>;
      } catch (error) {
        firstError ??= error;
        continue;
      }
      verified ??= { rule, claims };
      if (claimsAllowed(rule.method, rule.allow, claims)) allowedBy.push(rule);
    }
    if (!verified) throw firstError;
    evidence.rule = verified.rule.id;
    evidence.subject = typeof verified.claims.sub === "string" ? verified.claims.sub.slice(0, 256) : undefined;
    evidence.claims = claimsOfInterest(verified.rule.method, verified.rule.allow, verified.claims);
    if (allowedBy.length === 0) {
      throw new MandateError("JOIN_NOT_ALLOWED", `the token verifies but its claims (${JSON.stringify(evidence.claims)}) match no --allow condition of the ${request.method} join rules for ${claimedIssuer}`);
    }
    const agentNames = [...new Set(allowedBy.map((rule) => rule.agent))];
    if (agentNames.length > 1) throw new MandateError("INVALID_ARGUMENT", `the token matches join rules of several agents (${agentNames.join(", ")}); pass --agent to choose one`);
    const rule = allowedBy[0]!;
    evidence.rule = rule.id;
    const agent = await this.deps.agents.get(rule.agent);
    const instanceId = newInstanceId();
    this.deps.locks.assertNotLocked({ spiffeId: agent.spiffeId, agent: agent.name, instanceId });
    assertCsrRequestsOnly(csr, agent.spiffeId);

    const t = this.now;
    const exp = Number(verified.claims.exp) * 1000;
    const keys = replayKeys(request.token, claimedIssuer, verified.claims.jti);
    const used = await this.deps.store.db.selectFrom("join_token_uses").select(["used_at"]).where("key", "in", keys).where("expires_at", ">", t).executeTakeFirst();
    if (used) throw replayed(Number(used.used_at));
    // Spent in its own transaction, as one-time join tokens are: issuance commits in a group
    // with other callers' writes, where one caller's refusal must not fail the others.
    await this.deps.store.transaction(async (tx) => {
      await tx.deleteFrom("join_token_uses").where("key", "in", keys).where("expires_at", "<=", t).execute();
      for (const key of keys) {
        const inserted = await tx
          .insertInto("join_token_uses")
          .values({ key, rule_id: rule.id, instance_id: instanceId, used_at: t, expires_at: exp })
          .onConflict((oc) => oc.column("key").doNothing())
          .executeTakeFirst();
        // A concurrent join with the same token got there first.
        if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) !== 1) throw replayed(t);
      }
    });
    const hostname = (request.hostname ?? "").slice(0, 253) || "unknown";
    const svid = await enrollInstance({
      issuer: this.deps.issuer,
      agent,
      csr,
      instanceId,
      method: request.method,
      hostname,
      version: (request.version ?? "").slice(0, 64),
      ttlMs: this.deps.svidTtlMs,
      now: t,
      actor,
      details: { rule: rule.id, issuer: rule.issuer, subject: evidence.subject, claims: evidence.claims },
    });
    // Expired entries of other tokens are swept here and then, so the table stays the size of the live window.
    await this.deps.store.db.deleteFrom("join_token_uses").where("expires_at", "<=", t - 60_000).execute().catch(() => undefined);
    return { instanceId, agent: agent.name, svid };
  }
}

function replayed(usedAt: number): MandateError {
  return new MandateError("JOIN_TOKEN_USED", `this token was already used to join at ${new Date(usedAt).toISOString()}; each token joins once: restart the daemon with its --data-dir (it renews with its SVID) or give it a fresh token`);
}
