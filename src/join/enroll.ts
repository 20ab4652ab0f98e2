import { randomBytes } from "node:crypto";
import type { AuditActor } from "../audit/index.js";
import type { Agent, IssuedX509Svid, ParsedCsr, X509SvidIssuer } from "../identity/index.js";
import type { StoreTx } from "../store/index.js";

export interface EnrollInput {
  issuer: X509SvidIssuer;
  agent: Agent;
  csr: ParsedCsr;
  instanceId: string;
  method: string;
  hostname: string;
  version: string;
  ttlMs: number;
  now: number;
  actor: AuditActor;
  /** Facts about how the instance proved itself (rule, claims), for the join event. */
  details?: Record<string, unknown>;
}

export function newInstanceId(): string {
  return `inst-${randomBytes(8).toString("hex")}`;
}

/** The first SVID of a new instance, its instance record and the join event, committed together. */
export function enrollInstance(input: EnrollInput): Promise<IssuedX509Svid> {
  const { agent, instanceId, now } = input;
  return input.issuer.issue({
    csr: input.csr,
    spiffeId: agent.spiffeId,
    agentName: agent.name,
    instanceId,
    ttlMs: input.ttlMs,
    generation: 1,
    audit: (issued) => ({
      type: "identity.join",
      code: "OK",
      actor: { ...input.actor, kind: "agent", spiffeId: agent.spiffeId, agent: agent.name, instance: instanceId },
      target: { spiffeId: agent.spiffeId, serial: issued.serialHex, authority: issued.authorityId },
      outcome: { status: "ok" },
      details: { method: input.method, hostname: input.hostname, notAfter: issued.notAfter.toISOString(), keyAlgorithm: input.csr.keyAlgorithm, ...input.details },
    }),
    writes: async (tx: StoreTx, issued) => {
      await tx
        .insertInto("instances")
        .values({
          id: instanceId,
          agent_name: agent.name,
          spiffe_id: agent.spiffeId,
          hostname: input.hostname,
          join_method: input.method,
          generation: 1,
          created_at: now,
          last_renewed_at: now,
          svid_serial: issued.serialHex,
          svid_expires_at: issued.notAfter,
          version: input.version,
        })
        .execute();
    },
  });
}
