import type { AuditEventInput, AuditLog } from "../audit/index.js";
import { MandateError } from "../errors/index.js";
import type { Store, StoreTx } from "../store/index.js";
import { prepareQuery } from "../store/prepared.js";
import type { TrustDomainAuthority } from "./authority.js";
import { type ParsedCsr, assertCsrRequestsOnly, verifyCsr } from "./csr.js";
import type { SignatureVerifierPool } from "./signature-pool.js";
import { certToPem, randomSerial, serialToHex } from "./x509-util.js";
import { createHash, verify as verifySignatureAsync } from "node:crypto";
import { importPublicKey, readSubjectPublicKey } from "./spki.js";

/** Certificates are backdated this much so a verifier whose clock runs a little behind still accepts them. */
export const CLOCK_SKEW_BACKDATE_MS = 60_000;

export interface IssueX509SvidInput {
  csr: ParsedCsr;
  spiffeId: string;
  agentName: string | null;
  instanceId: string | null;
  ttlMs: number;
  /** The instance generation this certificate carries (renewals advance it). */
  generation?: number;
  /** The audit event that records this issuance; committed atomically with the issuance record. */
  audit: (issued: { serialHex: string; notAfter: Date; authorityId: string }) => AuditEventInput;
  /** Further writes that must commit with the issuance (instance state, token use…). */
  writes?: (tx: StoreTx, issued: { serialHex: string; notAfter: number }) => Promise<void>;
  /**
   * A compare-and-set that runs first inside the issuance's transaction. When it returns
   * an error, nothing of this issuance is written (the batch it shares commits without
   * it) and the error is thrown after the commit: no certificate leaves.
   */
  claim?: (tx: StoreTx, issued: { serialHex: string; notAfter: number }) => Promise<MandateError | undefined>;
}

export interface IssuedX509Svid {
  spiffeId: string;
  serialHex: string;
  notBefore: Date;
  notAfter: Date;
  certDer: Buffer;
  /** Leaf then intermediate, PEM: what `svid.pem` holds. */
  chainPem: string;
  /** The instance generation this certificate carries, when it belongs to an instance. */
  generation?: number | undefined;
}

/**
 * Signs X509-SVIDs. Nothing leaves the issuer unless its record (and audit event) is
 * durably committed first: a store failure means no certificate, never an unrecorded one.
 */
export class X509SvidIssuer {
  constructor(
    private readonly authority: TrustDomainAuthority,
    private readonly store: Store,
    private readonly audit: AuditLog,
    private readonly now: () => number = Date.now,
    private readonly verifierPool?: SignatureVerifierPool,
  ) {}

  private readonly insertIssued = prepareQuery(["serial", "spiffeId", "agent", "instance", "authority", "notAfter", "issuedAt", "generation", "digest"], (v) =>
    this.store.db.insertInto("issued_svids").values({
      serial: v.serial,
      spiffe_id: v.spiffeId,
      agent_name: v.agent,
      instance_id: v.instance,
      authority_id: v.authority,
      not_after: v.notAfter,
      issued_at: v.issuedAt,
      generation: v.generation,
      cert_sha256: v.digest,
    }),
  );

  /** Proof of possession, off the event loop when a verifier pool is configured. */
  verifyCsr(csr: ParsedCsr): Promise<void> {
    return verifyCsr(csr, this.verifierPool);
  }

  /** An ES256 signature (r‖s) over `data` by the P-256 key in `spkiDer`, off the event loop like CSRs. */
  async verifyEs256(spkiDer: Buffer, data: Buffer, signature: Buffer): Promise<boolean> {
    if (this.verifierPool) return this.verifierPool.verify("sha256", spkiDer, data, signature, { p1363: true });
    const key = await importPublicKey(readSubjectPublicKey(spkiDer, "PROOF_INVALID"));
    return new Promise((resolve) => verifySignatureAsync("sha256", data, { key, dsaEncoding: "ieee-p1363" }, signature, (error, ok) => resolve(!error && ok)));
  }

  async issue(input: IssueX509SvidInput): Promise<IssuedX509Svid> {
    this.store.assertWritable();
    await this.verifyCsr(input.csr);
    assertCsrRequestsOnly(input.csr, input.spiffeId);
    const signer = this.authority.x509Signer;
    const t = this.now();
    if (signer.notAfter <= t) throw new MandateError("CA_UNAVAILABLE", "the signing authority has expired; run `mandate ca rotate`");
    const notBefore = new Date(t - CLOCK_SKEW_BACKDATE_MS);
    // Never outlive the signing CA: a chain must not be valid longer than its issuer.
    const notAfter = new Date(Math.min(t + input.ttlMs, signer.notAfter));
    const serial = randomSerial();
    const serialHex = serialToHex(serial);
    const pool = this.verifierPool;
    const certDer = await signer.builder.buildX509Svid(
      {
        spiffeId: input.spiffeId,
        spkiDer: input.csr.spkiDer,
        keyAlgorithm: input.csr.keyAlgorithm,
        serial,
        notBefore,
        notAfter,
      },
      pool ? (tbs, privateKey) => pool.sign(signer.authorityId, privateKey, tbs) : undefined,
    );
    const event = input.audit({ serialHex, notAfter, authorityId: signer.authorityId });
    let refused: MandateError | undefined;
    await this.store.writeDurably(async (tx) => {
      refused = await input.claim?.(tx, { serialHex, notAfter: notAfter.getTime() });
      if (refused) return;
      await this.insertIssued(tx, {
        serial: serialHex,
        spiffeId: input.spiffeId,
        agent: input.agentName,
        instance: input.instanceId,
        authority: signer.authorityId,
        notAfter: notAfter.getTime(),
        issuedAt: t,
        generation: input.generation ?? null,
        // A renewal proof presents this certificate back; the digest shows it is one we issued.
        digest: createHash("sha256").update(certDer).digest("hex"),
      });
      await input.writes?.(tx, { serialHex, notAfter: notAfter.getTime() });
      await this.audit.appendInTransaction(tx, event);
    });
    if (refused) throw refused;
    return {
      spiffeId: input.spiffeId,
      serialHex,
      notBefore,
      notAfter,
      certDer,
      chainPem: certToPem(certDer) + certToPem(signer.certDer),
      generation: input.generation,
    };
  }
}
