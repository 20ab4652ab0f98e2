import { X509Certificate } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { availableBackends } from "../../test/helpers/backends.js";
import { StoreAuditLog } from "../audit/index.js";
import { Store } from "../store/index.js";
import { generateKeyAndCsr } from "../agent/csr.js";
import { TrustDomainAuthority } from "./authority.js";
import { parseCsr } from "./csr.js";
import { X509SvidIssuer } from "./issuer.js";

const backends = await availableBackends();

describe.each(backends)("trust domain authority on $name", (backend) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function setup(now: () => number = Date.now, trustDomain?: string) {
    const env = await backend.create();
    const store = await Store.open({ dataDir: env.dataDir, storage: env.storage });
    cleanups.push(env.cleanup, () => store.close());
    const { authority, created } = await TrustDomainAuthority.open(store, trustDomain, { now });
    return { env, store, authority, created, issuer: new X509SvidIssuer(authority, store, new StoreAuditLog(store), now) };
  }

  async function issue(issuer: X509SvidIssuer, ttlMs = 3600_000) {
    const { csrPem } = await generateKeyAndCsr();
    return issuer.issue({
      csr: parseCsr(csrPem),
      spiffeId: "spiffe://mandate.local/agent/a",
      agentName: "a",
      instanceId: null,
      ttlMs,
      audit: (i) => ({ type: "identity.issue", code: "OK", actor: { kind: "system" }, target: { serial: i.serialHex }, outcome: { status: "ok" } }),
    });
  }

  it("creates the trust domain once, with a P-256 root and intermediate, and reuses it", async () => {
    const { store, authority, created } = await setup();
    expect(created).toBe(true);
    expect(authority.trustDomain).toBe("mandate.local");
    const root = authority.rootCertificate;
    expect(root.ca).toBe(true);
    expect(root.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    const signer = authority.x509Signer;
    expect(signer.cert.ca).toBe(true);
    expect(signer.cert.checkIssued(root)).toBe(true);
    const again = await TrustDomainAuthority.open(store, undefined);
    expect(again.created).toBe(false);
    expect(again.authority.caPin).toBe(authority.caPin);
    await expect(TrustDomainAuthority.open(store, "other.example")).rejects.toThrow("belongs to trust domain mandate.local");
  });

  it("never issues past the signing CA's own expiry, and backdates for clock skew", async () => {
    const { authority, issuer } = await setup();
    const svid = await issue(issuer, 100 * 365 * 24 * 3600_000);
    expect(svid.notAfter.getTime()).toBeLessThanOrEqual(authority.x509Signer.notAfter);
    const leaf = new X509Certificate(svid.certDer);
    expect(Date.now() - new Date(leaf.validFrom).getTime()).toBeGreaterThanOrEqual(59_000);
    expect(Date.now() - new Date(leaf.validFrom).getTime()).toBeLessThanOrEqual(61_000);
  });

  it("rotates: publishes before signing, keeps the old intermediate until its last SVID expires", async () => {
    let offset = 0;
    const now = () => Date.now() + offset;
    const { authority, issuer } = await setup(now);
    const oldId = authority.x509Signer.authorityId;
    const oldKid = authority.jwtSvidSigner.kid;
    const sequence0 = authority.bundleSequence;
    const before = await issue(issuer, 3600_000);

    const prepared = await authority.prepareRotation();
    expect(authority.bundleSequence).toBeGreaterThan(sequence0);
    expect(authority.x509Authorities().map((c) => c.serialNumber)).toHaveLength(3);
    const published = JSON.stringify(authority.bundle().document);
    expect(published).toContain(prepared.kid);
    // Published but not yet signing.
    expect(authority.x509Signer.authorityId).toBe(oldId);
    const during = await issue(issuer);
    expect(new X509Certificate(during.certDer).checkIssued(new X509Certificate(authority.x509Signer.certDer))).toBe(true);

    await authority.activateRotation();
    expect(authority.x509Signer.authorityId).toBe(prepared.intermediateId);
    expect(authority.jwtSvidSigner.kid).toBe(prepared.kid);
    const after = await issue(issuer);
    const newSigner = new X509Certificate(authority.x509Signer.certDer);
    expect(new X509Certificate(after.certDer).checkIssued(newSigner)).toBe(true);

    // The old intermediate and JWT key stay while anything they signed is valid…
    await authority.pruneRetired(5 * 60_000);
    expect(authority.describe().intermediates.map((i) => i.id)).toContain(oldId);
    expect(authority.describe().jwtKeys.map((k) => k.kid)).toContain(oldKid);
    // …and leave once the last SVID they signed has expired.
    offset = Math.max(before.notAfter.getTime(), during.notAfter.getTime()) - Date.now() + 1000;
    const removed = await authority.pruneRetired(5 * 60_000);
    expect(removed).toContain(oldId);
    expect(removed).toContain(oldKid);
    expect(authority.describe().intermediates.map((i) => i.id)).toEqual([prepared.intermediateId]);
    expect(JSON.stringify(authority.bundle().document)).not.toContain(oldKid);
  });

  it("refuses to activate before the prepared authority has been published for the refresh interval", async () => {
    const env = await backend.create();
    const store = await Store.open({ dataDir: env.dataDir, storage: env.storage });
    cleanups.push(env.cleanup, () => store.close());
    const { authority } = await TrustDomainAuthority.open(store, undefined, { activationDelayMs: 60_000 });
    await expect(authority.activateRotation()).rejects.toThrow("no prepared authority");
    await authority.prepareRotation();
    await expect(authority.activateRotation()).rejects.toThrow("--force");
    await expect(authority.activateRotation({ force: true })).resolves.toBeTruthy();
  });

  it("rejects invalid trust domains at creation", async () => {
    const env = await backend.create();
    const store = await Store.open({ dataDir: env.dataDir, storage: env.storage });
    cleanups.push(env.cleanup, () => store.close());
    await expect(TrustDomainAuthority.open(store, "Bad_Domain!")).rejects.toThrow("trust domain");
  });
});
