import { type KeyObject, X509Certificate, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { sql } from "kysely";
import { MandateError } from "../errors/index.js";
import type { AuthorityState, CaAuthorityTable, Store, StoreTx } from "../store/index.js";
import { generateIntermediateAuthority, generateRootAuthority } from "./authority-keys.js";
import { buildSpiffeBundle } from "./bundle.js";
import { createJwtSvidSigner } from "./jwt-svid.js";
import { validateTrustDomain } from "./spiffe-id.js";
import { createX509SvidBuilder } from "./x509-svid-builder.js";
import { caPinOf, certToPem, keyToPem } from "./x509-util.js";

const DAY = 24 * 3600_000;
const ROOT_TTL_MS = 10 * 365 * DAY;
const INTERMEDIATE_TTL_MS = 365 * DAY;

export interface AuthorityOptions {
  now?: () => number;
  /** Seconds clients are told to wait between bundle refreshes. */
  bundleRefreshHintSeconds?: number;
  /**
   * How long a prepared authority is published before it may sign: bundle consumers
   * refresh at the hint, so by then every verifier trusts it. 0 in tests.
   */
  activationDelayMs?: number;
}

interface LoadedIntermediate {
  id: string;
  state: AuthorityState;
  cert: X509Certificate;
  certDer: Buffer;
  privateKey: KeyObject;
  notAfter: number;
  createdAt: number;
  retiredAt: number | null;
}

interface LoadedJwtKey {
  kid: string;
  state: AuthorityState;
  publicKey: KeyObject;
  privateKey: KeyObject;
  createdAt: number;
  retiredAt: number | null;
}

type X509SvidBuilder = ReturnType<typeof createX509SvidBuilder>;
type JwtSvidSigner = ReturnType<typeof createJwtSvidSigner>;

export interface ActiveX509Signer {
  authorityId: string;
  certDer: Buffer;
  cert: X509Certificate;
  privateKey: KeyObject;
  notAfter: number;
  builder: X509SvidBuilder;
}

/**
 * The trust domain's signing material: one root, intermediates that rotate through
 * prepared → active → retired, and JWT keys that rotate the same way. The state lives
 * in the store, so every control plane sharing it signs with the same authority.
 */
export class TrustDomainAuthority {
  private root!: { id: string; cert: X509Certificate; certDer: Buffer; privateKey: KeyObject };
  private intermediates: LoadedIntermediate[] = [];
  private jwtKeys: LoadedJwtKey[] = [];
  private active!: ActiveX509Signer;
  private jwtSigner!: JwtSvidSigner;
  private sequence = 0;
  private bundleCache: { sequence: number; json: string; document: object; jwtDocument: object } | undefined;
  private pemCache: { sequence: number; pem: string } | undefined;
  private readonly now: () => number;

  private constructor(
    private readonly store: Store,
    readonly trustDomain: string,
    private readonly options: AuthorityOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /**
   * Opens the trust domain stored in `store`, creating it on first start. A data
   * directory belongs to one trust domain: asking for another is an error, not a silent switch.
   */
  static async open(store: Store, requestedTrustDomain: string | undefined, options: AuthorityOptions = {}): Promise<{ authority: TrustDomainAuthority; created: boolean }> {
    const now = options.now ?? Date.now;
    let created = false;
    const trustDomain = await store.withInitLock(async () => {
      const existing = await store.getMeta("trust_domain");
      if (existing) {
        if (requestedTrustDomain && requestedTrustDomain !== existing) {
          throw new MandateError(
            "CONFIG_INVALID",
            `this data directory belongs to trust domain ${existing}, not ${requestedTrustDomain}; use another --data-dir or drop --trust-domain`,
          );
        }
        return existing;
      }
      const td = validateTrustDomain(requestedTrustDomain ?? "mandate.local");
      const t = now();
      const root = await generateRootAuthority(td, new Date(t - 60_000), new Date(t + ROOT_TTL_MS));
      const rootId = `root-${randomBytes(6).toString("hex")}`;
      const intermediate = await generateIntermediateAuthority(td, root, new Date(t - 60_000), new Date(t + INTERMEDIATE_TTL_MS));
      const jwt = newJwtKey();
      await store.transaction(async (tx) => {
        await tx
          .insertInto("ca_authorities")
          .values([
            authorityRow(rootId, "root", null, root.certDer, root.privateKey, "active", t),
            authorityRow(`int-${randomBytes(6).toString("hex")}`, "intermediate", rootId, intermediate.certDer, intermediate.privateKey, "active", t),
          ])
          .execute();
        await tx.insertInto("jwt_keys").values(jwtKeyRow(jwt, "active", t)).execute();
        await tx
          .insertInto("meta")
          .values([
            { key: "trust_domain", value: td },
            { key: "bundle_sequence", value: "1" },
            { key: "created_at", value: String(t) },
            { key: "locks_revision", value: "0" },
          ])
          .execute();
      });
      created = true;
      return td;
    });
    const authority = new TrustDomainAuthority(store, trustDomain, options);
    await authority.reload();
    return { authority, created };
  }

  /** Re-reads the authorities; cheap when nothing changed (compares the bundle sequence). */
  async reload(force = false): Promise<boolean> {
    const sequence = Number((await this.store.getMeta("bundle_sequence")) ?? "0");
    if (!force && sequence === this.sequence && this.root) return false;
    const rows = await this.store.db.selectFrom("ca_authorities").selectAll().where("state", "!=", "removed").execute();
    const rootRow = rows.find((r) => r.kind === "root" && r.state === "active");
    if (!rootRow) throw new MandateError("CA_UNAVAILABLE", "the trust domain has no active root authority");
    const rootDer = pemToDer(rootRow.cert_pem);
    this.root = { id: rootRow.id, certDer: rootDer, cert: new X509Certificate(rootDer), privateKey: createPrivateKey(rootRow.key_pem) };
    this.intermediates = rows
      .filter((r) => r.kind === "intermediate")
      .map((r) => {
        const der = pemToDer(r.cert_pem);
        return { id: r.id, state: r.state, cert: new X509Certificate(der), certDer: der, privateKey: createPrivateKey(r.key_pem), notAfter: r.not_after, createdAt: r.created_at, retiredAt: r.retired_at };
      })
      .sort((a, b) => a.createdAt - b.createdAt);
    const active = this.intermediates.find((i) => i.state === "active");
    if (!active) throw new MandateError("CA_UNAVAILABLE", "the trust domain has no active intermediate authority");
    if (this.active?.authorityId !== active.id) {
      this.active = {
        authorityId: active.id,
        certDer: active.certDer,
        cert: active.cert,
        privateKey: active.privateKey,
        notAfter: active.notAfter,
        builder: createX509SvidBuilder({ certDer: active.certDer, privateKey: active.privateKey }),
      };
    }
    const keyRows = await this.store.db.selectFrom("jwt_keys").selectAll().where("state", "!=", "removed").execute();
    this.jwtKeys = keyRows
      .map((r) => {
        const privateKey = createPrivateKey(r.key_pem);
        return { kid: r.kid, state: r.state, privateKey, publicKey: createPublicKey(privateKey), createdAt: r.created_at, retiredAt: r.retired_at };
      })
      .sort((a, b) => a.createdAt - b.createdAt);
    const activeJwt = this.jwtKeys.find((k) => k.state === "active");
    if (!activeJwt) throw new MandateError("CA_UNAVAILABLE", "the trust domain has no active JWT signing key");
    if (this.jwtSigner?.kid !== activeJwt.kid) this.jwtSigner = createJwtSvidSigner({ kid: activeJwt.kid, privateKey: activeJwt.privateKey });
    this.sequence = sequence;
    this.bundleCache = undefined;
    this.pemCache = undefined;
    return true;
  }

  get rootCertificate(): X509Certificate {
    return this.root.cert;
  }

  get caPin(): string {
    return caPinOf(this.root.cert);
  }

  get bundleSequence(): number {
    return this.sequence;
  }

  /** The signer for new X509-SVIDs; never a prepared or retired authority. */
  get x509Signer(): ActiveX509Signer {
    return this.active;
  }

  get jwtSvidSigner(): JwtSvidSigner {
    return this.jwtSigner;
  }

  /** Trust anchors for verifying X509-SVIDs: the root and every published intermediate. */
  x509Authorities(): X509Certificate[] {
    return [this.root.cert, ...this.intermediates.map((i) => i.cert)];
  }

  /** Whether certificates signed by this intermediate still chain to the published bundle. */
  isPublishedAuthority(authorityId: string): boolean {
    return this.intermediates.some((i) => i.id === authorityId);
  }

  /** PEM of the trust anchors; computed once per bundle sequence since every SVID response carries it. */
  x509AuthoritiesPem(): string {
    if (this.pemCache?.sequence !== this.sequence) {
      this.pemCache = { sequence: this.sequence, pem: this.x509Authorities().map((c) => certToPem(c.raw)).join("") };
    }
    return this.pemCache.pem;
  }

  jwtAuthorities(): { kid: string; publicKey: KeyObject }[] {
    return this.jwtKeys.map((k) => ({ kid: k.kid, publicKey: k.publicKey }));
  }

  describe() {
    return {
      trustDomain: this.trustDomain,
      caPin: this.caPin,
      bundleSequence: this.sequence,
      root: { id: this.root.id, notAfter: new Date(this.root.cert.validTo).toISOString(), fingerprintSha256: this.root.cert.fingerprint256 },
      intermediates: this.intermediates.map((i) => ({
        id: i.id,
        state: i.state,
        notAfter: new Date(i.notAfter).toISOString(),
        retiredAt: i.retiredAt === null ? null : new Date(i.retiredAt).toISOString(),
      })),
      jwtKeys: this.jwtKeys.map((k) => ({ kid: k.kid, state: k.state, retiredAt: k.retiredAt === null ? null : new Date(k.retiredAt).toISOString() })),
    };
  }

  /** The SPIFFE bundle document, built once per bundle sequence. */
  /** Only the jwt-svid keys: what agents store as `jwt_bundle.json`; cached with the bundle. */
  jwtBundleDocument(): object {
    return this.bundle().jwtDocument;
  }

  bundle(): { json: string; document: object; jwtDocument: object; sequence: number } {
    if (!this.bundleCache || this.bundleCache.sequence !== this.sequence) {
      const document = buildSpiffeBundle({
        x509Authorities: this.x509Authorities().map((c) => c.raw),
        jwtAuthorities: this.jwtAuthorities(),
        sequence: this.sequence,
        refreshHintSeconds: this.options.bundleRefreshHintSeconds ?? 300,
      });
      const jwtDocument = { keys: document.keys.filter((k) => k.use === "jwt-svid"), spiffe_sequence: document.spiffe_sequence };
      this.bundleCache = { sequence: this.sequence, document, jwtDocument, json: JSON.stringify(document) };
    }
    return this.bundleCache;
  }

  /**
   * Rotation step 1: a new intermediate and JWT key are published in the bundle
   * but do not sign yet, so verifiers learn them before they meet anything they signed.
   */
  async prepareRotation(): Promise<{ intermediateId: string; kid: string }> {
    const existing = this.intermediates.find((i) => i.state === "prepared");
    const existingKey = this.jwtKeys.find((k) => k.state === "prepared");
    if (existing && existingKey) return { intermediateId: existing.id, kid: existingKey.kid };
    const t = this.now();
    const id = `int-${randomBytes(6).toString("hex")}`;
    const intermediate = existing ? undefined : await generateIntermediateAuthority(this.trustDomain, this.root, new Date(t - 60_000), new Date(t + INTERMEDIATE_TTL_MS));
    const jwt = existingKey ? undefined : newJwtKey();
    await this.store.transaction(async (tx) => {
      if (intermediate) await tx.insertInto("ca_authorities").values(authorityRow(id, "intermediate", this.root.id, intermediate.certDer, intermediate.privateKey, "prepared", t)).execute();
      if (jwt) await tx.insertInto("jwt_keys").values(jwtKeyRow(jwt, "prepared", t)).execute();
      await bumpSequence(tx);
    });
    await this.reload(true);
    return { intermediateId: existing?.id ?? id, kid: existingKey?.kid ?? jwt!.kid };
  }

  /** Rotation step 2: the prepared authority signs from now on; the old one is retired but stays published. */
  async activateRotation(options: { force?: boolean } = {}): Promise<{ intermediateId: string; kid: string }> {
    const prepared = this.intermediates.find((i) => i.state === "prepared");
    const preparedKey = this.jwtKeys.find((k) => k.state === "prepared");
    if (!prepared || !preparedKey) {
      throw new MandateError("INVALID_ARGUMENT", "no prepared authority to activate; run `mandate ca rotate` first");
    }
    const t = this.now();
    const delay = this.options.activationDelayMs ?? 0;
    if (!options.force && t - prepared.createdAt < delay) {
      const wait = Math.ceil((delay - (t - prepared.createdAt)) / 1000);
      throw new MandateError(
        "INVALID_ARGUMENT",
        `the prepared authority has been published for less than the bundle refresh interval; activate in ${wait}s, or pass --force if every verifier already has the new bundle`,
      );
    }
    await this.store.transaction(async (tx) => {
      await tx.updateTable("ca_authorities").set({ state: "retired", retired_at: t }).where("kind", "=", "intermediate").where("state", "=", "active").execute();
      await tx.updateTable("ca_authorities").set({ state: "active", activated_at: t }).where("id", "=", prepared.id).execute();
      await tx.updateTable("jwt_keys").set({ state: "retired", retired_at: t }).where("state", "=", "active").execute();
      await tx.updateTable("jwt_keys").set({ state: "active", activated_at: t }).where("kid", "=", preparedKey.kid).execute();
      await bumpSequence(tx);
    });
    await this.reload(true);
    return { intermediateId: prepared.id, kid: preparedKey.kid };
  }

  /**
   * Drops retired authorities from the bundle once nothing they signed can still be
   * valid: the last X509-SVID they issued has expired (looked up, not assumed), and
   * for JWT keys the longest JWT-SVID lifetime has passed since retirement.
   */
  async pruneRetired(maxJwtTtlMs: number): Promise<string[]> {
    const t = this.now();
    const removed: string[] = [];
    for (const authority of this.intermediates.filter((i) => i.state === "retired")) {
      const row = await this.store.db
        .selectFrom("issued_svids")
        .select((eb) => eb.fn.max("not_after").as("last"))
        .where("authority_id", "=", authority.id)
        .executeTakeFirst();
      const lastExpiry = Math.max(Number(row?.last ?? 0), authority.retiredAt ?? 0);
      if (lastExpiry < t) removed.push(authority.id);
    }
    const removedKids = this.jwtKeys.filter((k) => k.state === "retired" && (k.retiredAt ?? 0) + maxJwtTtlMs < t).map((k) => k.kid);
    if (removed.length === 0 && removedKids.length === 0) return [];
    await this.store.transaction(async (tx) => {
      if (removed.length) await tx.updateTable("ca_authorities").set({ state: "removed" }).where("id", "in", removed).execute();
      if (removedKids.length) await tx.updateTable("jwt_keys").set({ state: "removed" }).where("kid", "in", removedKids).execute();
      await bumpSequence(tx);
    });
    await this.reload(true);
    return [...removed, ...removedKids];
  }
}

function newJwtKey(): { kid: string; privateKey: KeyObject; publicKey: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { kid: randomBytes(16).toString("base64url"), privateKey, publicKey };
}

function authorityRow(id: string, kind: "root" | "intermediate", parentId: string | null, certDer: Buffer, key: KeyObject, state: AuthorityState, t: number): CaAuthorityTable {
  const cert = new X509Certificate(certDer);
  return {
    id,
    kind,
    parent_id: parentId,
    cert_pem: certToPem(certDer),
    key_pem: keyToPem(key),
    not_before: new Date(cert.validFrom).getTime(),
    not_after: new Date(cert.validTo).getTime(),
    state,
    created_at: t,
    activated_at: state === "active" ? t : null,
    retired_at: null,
  };
}

function jwtKeyRow(key: { kid: string; privateKey: KeyObject; publicKey: KeyObject }, state: AuthorityState, t: number) {
  return {
    kid: key.kid,
    public_jwk: JSON.stringify(key.publicKey.export({ format: "jwk" })),
    key_pem: keyToPem(key.privateKey),
    state,
    created_at: t,
    activated_at: state === "active" ? t : null,
    retired_at: null,
  };
}

/** One atomic increment, so control planes rotating concurrently never reuse a sequence number. */
async function bumpSequence(tx: StoreTx): Promise<void> {
  await tx
    .updateTable("meta")
    .set({ value: sql<string>`cast(cast(value as bigint) + 1 as text)` })
    .where("key", "=", "bundle_sequence")
    .execute();
}

function pemToDer(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, ""), "base64");
}
