import type { AuditLog } from "../audit/index.js";
import { MandateError } from "../errors/index.js";
import type { Store } from "../store/index.js";
import type { TrustDomainAuthority } from "./authority.js";
import type { Caller } from "./caller.js";
import { parseCsr } from "./csr.js";
import type { IssuedX509Svid, X509SvidIssuer } from "./issuer.js";
import type { LockRegistry } from "./locks.js";

export const MAX_AUDIENCES = 16;
export const MAX_AUDIENCE_LENGTH = 512;

/** What an already-joined agent does with its current SVID: renew it, and mint JWT-SVIDs. */
export class SvidService {
  constructor(
    private readonly deps: {
      store: Store;
      authority: TrustDomainAuthority;
      issuer: X509SvidIssuer;
      locks: LockRegistry;
      audit: AuditLog;
      svidTtlMs: number;
      jwtTtlMs: number;
      jwtMaxTtlMs: number;
      now?: () => number;
    },
  ) {}

  /**
   * Renewal is authenticated by the current SVID, never by the join token again.
   * The instance is found from the presented certificate's serial.
   */
  async renew(caller: Caller, csrInput: string): Promise<{ instanceId: string; svid: IssuedX509Svid }> {
    const { store, locks } = this.deps;
    const actor = { kind: "agent" as const, spiffeId: caller.spiffeId, agent: caller.agent };
    try {
      if (caller.kind !== "agent" || !caller.agent) throw new MandateError("PERMISSION_DENIED", "only agent identities renew through this endpoint");
      // One lookup: the certificate presented must be one this instance was issued.
      const instance = await store.db
        .selectFrom("issued_svids")
        .innerJoin("instances", "instances.id", "issued_svids.instance_id")
        .select(["instances.id", "instances.generation", "instances.last_presented_generation", "issued_svids.generation as presented"])
        .where("issued_svids.serial", "=", caller.serialHex)
        .executeTakeFirst();
      if (!instance) throw new MandateError("PERMISSION_DENIED", "the presented SVID belongs to no known instance of this agent; join again with a new token");
      locks.assertNotLocked({ spiffeId: caller.spiffeId, agent: caller.agent, serialHex: caller.serialHex, instanceId: instance.id });
      const presented = Number(instance.presented ?? instance.generation);
      await this.detectCopiedCredential(caller, instance.id, presented, Number(instance.generation), Number(instance.last_presented_generation ?? 0));
      const csr = parseCsr(csrInput);
      const t = (this.deps.now ?? Date.now)();
      const svid = await this.deps.issuer.issue({
        csr,
        spiffeId: caller.spiffeId,
        agentName: caller.agent,
        instanceId: instance.id,
        ttlMs: this.deps.svidTtlMs,
        generation: instance.generation + 1,
        audit: (result) => ({
          type: "identity.renew",
          code: "OK",
          actor: { ...actor, instance: instance.id },
          target: { spiffeId: caller.spiffeId, serial: result.serialHex, previousSerial: caller.serialHex, authority: result.authorityId },
          outcome: { status: "ok" },
          details: { notAfter: result.notAfter.toISOString(), generation: instance.generation + 1 },
        }),
        writes: async (tx, result) => {
          await tx
            .updateTable("instances")
            .set({ generation: instance.generation + 1, last_presented_generation: presented, last_renewed_at: t, svid_serial: result.serialHex, svid_expires_at: result.notAfter })
            .where("id", "=", instance.id)
            .execute();
        },
      });
      return { instanceId: instance.id, svid };
    } catch (error) {
      const code = (error as MandateError).code ?? "INTERNAL";
      await this.deps.audit
        .append({ type: "identity.renew", code, actor, target: { serial: caller.serialHex }, outcome: { status: "error", error: code, message: (error as Error).message } })
        .catch(() => undefined);
      throw error;
    }
  }

  /**
   * Every renewal advances the instance's generation. Presenting an older generation
   * means a copy of the credentials is in use somewhere, so that instance (and only it)
   * is locked and an alert recorded. One exception keeps a lost response from locking an
   * honest agent: the generation that made the last renewal may renew again, as long as
   * the generation that renewal produced has never been presented.
   */
  private async detectCopiedCredential(caller: Caller, instanceId: string, presented: number, current: number, lastPresented: number): Promise<void> {
    if (presented >= current) return;
    // A retry after a lost response presents the same generation the last renewal did.
    if (presented === current - 1 && lastPresented === presented) return;
    const reason = `credentials copied: generation ${presented} presented after generation ${current} was issued`;
    const lock = await this.deps.locks.add({ kind: "instance", value: instanceId, reason, createdBy: "mandate:theft-detection" });
    await this.deps.audit.append({
      type: "identity.copy_detected",
      code: "LOCKED",
      actor: { kind: "agent", spiffeId: caller.spiffeId, agent: caller.agent, instance: instanceId },
      target: { instance: instanceId, lock: lock.id, serial: caller.serialHex },
      decision: { allow: false, reasons: [reason] },
      outcome: { status: "error", error: "LOCKED", message: reason },
      details: { alert: true, presentedGeneration: presented, currentGeneration: current },
    });
    throw new MandateError("LOCKED", `instance ${instanceId} is locked: ${reason}`, { details: { lockId: lock.id } });
  }

  async mintJwtSvid(caller: Caller, request: { audience: string[]; ttlSeconds?: number | undefined }): Promise<{ token: string; expiresAt: Date; spiffeId: string }> {
    const audience = request.audience;
    if (!Array.isArray(audience) || audience.length === 0) throw new MandateError("INVALID_ARGUMENT", "at least one audience is required (--audience)");
    if (audience.length > MAX_AUDIENCES) throw new MandateError("INVALID_ARGUMENT", `at most ${MAX_AUDIENCES} audiences`);
    for (const a of audience) {
      if (typeof a !== "string" || a.length === 0 || a.length > MAX_AUDIENCE_LENGTH) throw new MandateError("INVALID_ARGUMENT", "each audience must be a non-empty string of at most 512 characters");
    }
    const ttlMs = request.ttlSeconds === undefined ? this.deps.jwtTtlMs : request.ttlSeconds * 1000;
    if (!(ttlMs > 0) || ttlMs > this.deps.jwtMaxTtlMs) {
      throw new MandateError("INVALID_ARGUMENT", `JWT-SVID TTL must be between 1s and ${this.deps.jwtMaxTtlMs / 1000}s`);
    }
    this.deps.locks.assertNotLocked({ spiffeId: caller.spiffeId, agent: caller.agent, serialHex: caller.serialHex });
    const now = new Date((this.deps.now ?? Date.now)());
    // A JWT-SVID never outlives the X509-SVID that asked for it.
    const ttlSeconds = Math.max(1, Math.floor(Math.min(ttlMs, caller.notAfter.getTime() - now.getTime()) / 1000));
    const token = await this.deps.authority.jwtSvidSigner.mintJwtSvid({ spiffeId: caller.spiffeId, audience, ttlSeconds, now });
    const expiresAt = new Date(now.getTime() + ttlSeconds * 1000);
    await this.deps.audit.append({
      type: "identity.jwt",
      code: "OK",
      actor: { kind: caller.kind === "admin" ? "admin" : "agent", spiffeId: caller.spiffeId, agent: caller.agent },
      target: { audience },
      outcome: { status: "ok" },
      details: { expiresAt: expiresAt.toISOString() },
    });
    return { token, expiresAt, spiffeId: caller.spiffeId };
  }
}
