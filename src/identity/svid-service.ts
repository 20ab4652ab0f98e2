import { createHash, timingSafeEqual } from "node:crypto";
import type { AuditActor, AuditLog } from "../audit/index.js";
import { MandateError } from "../errors/index.js";
import type { Store } from "../store/index.js";
import { prepareQuery } from "../store/prepared.js";
import type { TrustDomainAuthority } from "./authority.js";
import type { Caller } from "./caller.js";
import { type ParsedCsr, parseCsr } from "./csr.js";
import { SERVER_PATH } from "./caller.js";
import { RENEWAL_PROOF_WINDOW_SECONDS, csrDigest, inspectPresentedLeaf, parseRenewalProof, proofDigest } from "./renewal-proof.js";
import { agentNameOf } from "./spiffe-id.js";
import { validateX509Svid } from "./x509-svid-validate.js";
import type { IssuedX509Svid, X509SvidIssuer } from "./issuer.js";
import type { LockRegistry } from "./locks.js";

export const MAX_AUDIENCES = 16;

type PresentedInstance = NonNullable<Awaited<ReturnType<SvidService["findPresented"]>>>;

function proofInvalid(reason: string): MandateError {
  return new MandateError("PROOF_INVALID", `renewal proof rejected: ${reason}`);
}
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
    const { locks } = this.deps;
    const actor = { kind: "agent" as const, spiffeId: caller.spiffeId, agent: caller.agent };
    try {
      if (caller.kind !== "agent" || !caller.agent) throw new MandateError("PERMISSION_DENIED", "only agent identities renew through this endpoint");
      // One lookup: the certificate presented must be one this instance was issued.
      const instance = await this.findPresented(caller.serialHex);
      if (!instance) throw new MandateError("PERMISSION_DENIED", "the presented SVID belongs to no known instance of this agent; join again with a new token");
      locks.assertNotLocked({ spiffeId: caller.spiffeId, agent: caller.agent, serialHex: caller.serialHex, instanceId: instance.id });
      const presented = { spiffeId: caller.spiffeId, agent: caller.agent, serialHex: caller.serialHex };
      return await this.renewInstance(presented, instance, parseCsr(csrInput), { method: "mtls" });
    } catch (error) {
      await this.auditRefusal(actor, caller.serialHex, error);
      throw error;
    }
  }

  /**
   * Renewal by proof of possession (see renewal-proof.ts): the current SVID travels in
   * the proof, not in the TLS handshake, so the connection may be kept alive across
   * renewals. What the mTLS path learns from the handshake is established here: the
   * certificate is one this trust domain issued (its recorded digest, or the chain for
   * certificates issued before digests were recorded), it is valid and not locked, the
   * proof verifies under its key, and the proof covers this CSR, this control plane, now,
   * and the instance's current generation. Nothing is locked or written before the
   * proof's signature has verified: a certificate is public, a key is not.
   */
  async renewWithProof(request: { csr: string; proof: string; address?: string | undefined }): Promise<{ instanceId: string; agent: string; selectors: string[]; svid: IssuedX509Svid }> {
    const { authority, locks } = this.deps;
    const now = (this.deps.now ?? Date.now)();
    let actor: AuditActor = { kind: "anonymous", ...(request.address ? { address: request.address } : {}) };
    let serialHex: string | undefined;
    try {
      const proof = parseRenewalProof(request.proof);
      const { claims } = proof;
      const leaf = inspectPresentedLeaf(proof.leafDer);
      serialHex = leaf.serialHex;
      // Claimed, not yet proven: recorded as such until the signature verifies.
      actor = { ...actor, spiffeId: leaf.spiffeId.uri };
      const agent = agentNameOf(leaf.spiffeId);
      if (!agent || leaf.spiffeId.trustDomain !== authority.trustDomain) throw new MandateError("PERMISSION_DENIED", "only agent identities of this trust domain renew through this endpoint");
      if (claims.sub !== leaf.spiffeId.uri) throw proofInvalid("sub is not the presented certificate's SPIFFE ID");
      if (claims.serial !== leaf.serialHex) throw proofInvalid("serial is not the presented certificate's serial");
      const audience = `spiffe://${authority.trustDomain}${SERVER_PATH}`;
      if (claims.aud !== audience) throw proofInvalid(`aud must be ${audience}`);
      const skew = claims.iat - Math.floor(now / 1000);
      if (Math.abs(skew) > RENEWAL_PROOF_WINDOW_SECONDS) {
        throw new MandateError("PROOF_INVALID", `renewal proof rejected: iat is ${skew}s from the server's clock (window ±${RENEWAL_PROOF_WINDOW_SECONDS}s); check the agent's clock`, {
          details: { reason: "clock", serverTime: Math.floor(now / 1000) },
        });
      }
      if (leaf.keyAlgorithm !== "ec-p256") throw proofInvalid(`the presented SVID's key is ${leaf.keyAlgorithm}; ES256 proofs need a P-256 key (renew over mTLS)`);

      const instance = await this.findPresented(leaf.serialHex);
      if (!instance) throw proofInvalid("the presented certificate is not one this trust domain issued to an instance");
      if (instance.cert_sha256) {
        const digest = createHash("sha256").update(proof.leafDer).digest();
        if (!timingSafeEqual(digest, Buffer.from(instance.cert_sha256, "hex"))) throw proofInvalid("the presented certificate is not the one issued under its serial");
        if (!authority.isPublishedAuthority(instance.authority_id)) throw new MandateError("INVALID_CERTIFICATE", "X509-SVID rejected: its signing authority is no longer in the trust bundle");
      } else {
        // Issued before digests were recorded: the chain itself shows who issued it.
        validateX509Svid([proof.leafDer], (td) => (td === authority.trustDomain ? authority.x509Authorities() : undefined), new Date(now));
      }
      if (instance.spiffe_id !== leaf.spiffeId.uri || instance.id !== claims.instance) throw proofInvalid("the proof names another instance than the one the certificate was issued to");
      if (now < leaf.notBefore.getTime()) throw new MandateError("UNAUTHENTICATED", `the presented SVID is not valid until ${leaf.notBefore.toISOString()}`);
      if (now >= leaf.notAfter.getTime()) throw new MandateError("UNAUTHENTICATED", `the presented SVID expired at ${leaf.notAfter.toISOString()}; join again`);
      locks.assertFresh();
      locks.assertNotLocked({ spiffeId: leaf.spiffeId.uri, agent, serialHex: leaf.serialHex, instanceId: instance.id });

      if (!(await this.deps.issuer.verifyEs256(leaf.spkiDer, proof.signingInput, proof.signature))) throw proofInvalid("the signature does not verify with the presented SVID's key");
      actor = { kind: "agent", spiffeId: leaf.spiffeId.uri, agent, instance: instance.id, ...(request.address ? { address: request.address } : {}) };
      const presentedGeneration = Number(instance.presented ?? instance.generation);
      if (claims.generation !== presentedGeneration) throw proofInvalid(`the proof names generation ${claims.generation}, the presented SVID carries ${presentedGeneration}`);
      const csr = parseCsr(request.csr);
      if (csrDigest(csr.der) !== claims.csr) throw proofInvalid("the proof covers another CSR");
      const proofSha256 = proofDigest(request.proof);
      if (instance.last_proof_sha256 === proofSha256) throw proofInvalid("this proof was already used; a replayed proof never renews");
      const presented = { spiffeId: leaf.spiffeId.uri, agent, serialHex: leaf.serialHex };
      const result = await this.renewInstance(presented, instance, csr, { method: "proof", proofSha256 });
      // Read with the instance, so the response needs no second query.
      return { ...result, agent, selectors: JSON.parse(instance.selectors ?? "[]") as string[] };
    } catch (error) {
      await this.auditRefusal(actor, serialHex, error);
      throw error;
    }
  }

  private async auditRefusal(actor: AuditActor, serialHex: string | undefined, error: unknown): Promise<void> {
    const code = (error as MandateError).code ?? "INTERNAL";
    await this.deps.audit
      .append({ type: "identity.renew", code, actor, target: serialHex ? { serial: serialHex } : {}, outcome: { status: "error", error: code, message: (error as Error).message } })
      .catch(() => undefined);
  }

  /** The presented certificate's issuance record, its instance's state and its agent's selectors, in one query. */
  private readonly findPresentedQuery = prepareQuery(["serial"], (v) =>
    this.deps.store.db
      .selectFrom("issued_svids")
      .innerJoin("instances", "instances.id", "issued_svids.instance_id")
      // A left join: whether the agent still exists is for the locks (agents rm) to say, as before.
      .leftJoin("agents", "agents.name", "instances.agent_name")
      .select([
        "agents.selectors",
        "instances.id",
        "instances.generation",
        "instances.last_presented_generation",
        "instances.last_proof_sha256",
        "issued_svids.generation as presented",
        "issued_svids.cert_sha256",
        "issued_svids.spiffe_id",
        "issued_svids.authority_id",
      ])
      .where("issued_svids.serial", "=", v.serial),
  );

  private async findPresented(serialHex: string) {
    return (await this.findPresentedQuery(this.deps.store.db, { serial: serialHex })).rows[0];
  }

  /** The compare-and-set that advances an instance's generation: one shape per renewal path. */
  private readonly advanceGeneration = {
    mtls: prepareQuery(["next", "presented", "at", "serial", "expiresAt", "id", "current"], (v) =>
      this.deps.store.db
        .updateTable("instances")
        .set({ generation: v.next, last_presented_generation: v.presented, last_renewed_at: v.at, svid_serial: v.serial, svid_expires_at: v.expiresAt })
        .where("id", "=", v.id)
        .where("generation", "=", v.current),
    ),
    proof: prepareQuery(["next", "presented", "at", "serial", "expiresAt", "proof", "id", "current"], (v) =>
      this.deps.store.db
        .updateTable("instances")
        .set({ generation: v.next, last_presented_generation: v.presented, last_renewed_at: v.at, svid_serial: v.serial, svid_expires_at: v.expiresAt, last_proof_sha256: v.proof })
        .where("id", "=", v.id)
        .where("generation", "=", v.current),
    ),
  };

  /**
   * The part both renewal paths share: copied-credential detection, then issuance whose
   * first write advances the generation with a compare-and-set, so two renewals racing
   * with one generation cannot both succeed (on one control plane or several).
   */
  private async renewInstance(
    presented: { spiffeId: string; agent: string; serialHex: string },
    instance: PresentedInstance,
    csr: ParsedCsr,
    options: { method: "mtls" | "proof"; proofSha256?: string },
  ): Promise<{ instanceId: string; svid: IssuedX509Svid }> {
    const presentedGeneration = Number(instance.presented ?? instance.generation);
    const current = Number(instance.generation);
    await this.detectCopiedCredential(presented, instance.id, presentedGeneration, current, Number(instance.last_presented_generation ?? 0));
    const t = (this.deps.now ?? Date.now)();
    const next = current + 1;
    const svid = await this.deps.issuer.issue({
      csr,
      spiffeId: presented.spiffeId,
      agentName: presented.agent,
      instanceId: instance.id,
      ttlMs: this.deps.svidTtlMs,
      generation: next,
      audit: (result) => ({
        type: "identity.renew",
        code: "OK",
        actor: { kind: "agent", spiffeId: presented.spiffeId, agent: presented.agent, instance: instance.id },
        target: { spiffeId: presented.spiffeId, serial: result.serialHex, previousSerial: presented.serialHex, authority: result.authorityId },
        outcome: { status: "ok" },
        details: { notAfter: result.notAfter.toISOString(), generation: next, method: options.method },
      }),
      claim: async (tx, result) => {
        const values = { next, presented: presentedGeneration, at: t, serial: result.serialHex, expiresAt: result.notAfter, id: instance.id, current };
        const updated = options.proofSha256 ? await this.advanceGeneration.proof(tx, { ...values, proof: options.proofSha256 }) : await this.advanceGeneration.mtls(tx, values);
        if (Number(updated.numAffectedRows ?? 0) === 1) return undefined;
        const message = `generation ${current} of instance ${instance.id} was consumed by a concurrent renewal`;
        return options.method === "proof" ? proofInvalid(message) : new MandateError("CONFLICT", message);
      },
    });
    return { instanceId: instance.id, svid };
  }

  /**
   * Every renewal advances the instance's generation. Presenting an older generation
   * means a copy of the credentials is in use somewhere, so that instance (and only it)
   * is locked and an alert recorded. One exception keeps a lost response from locking an
   * honest agent: the generation that made the last renewal may renew again, as long as
   * the generation that renewal produced has never been presented.
   */
  private async detectCopiedCredential(caller: { spiffeId: string; agent?: string | undefined; serialHex: string }, instanceId: string, presented: number, current: number, lastPresented: number): Promise<void> {
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
