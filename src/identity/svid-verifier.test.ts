import { afterEach, describe, expect, it } from "vitest";
import { tempDir } from "../../test/helpers/backends.js";
import { generateKeyAndCsr } from "../agent/csr.js";
import { StoreAuditLog } from "../audit/index.js";
import { Store } from "../store/index.js";
import { TrustDomainAuthority } from "./authority.js";
import { parseCsr } from "./csr.js";
import { X509SvidIssuer } from "./issuer.js";
import { LockRegistry } from "./locks.js";
import { SvidVerifier } from "./svid-verifier.js";
import { pemDecodeAll } from "./x509-util.js";

describe("SvidVerifier", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function setup() {
    const store = await Store.open({ dataDir: await tempDir() });
    cleanups.push(() => store.close());
    const { authority } = await TrustDomainAuthority.open(store, undefined);
    const locks = new LockRegistry(store);
    await locks.start(50);
    cleanups.push(async () => locks.stop());
    const issuer = new X509SvidIssuer(authority, store, new StoreAuditLog(store));
    return { authority, locks, issuer, verifier: new SvidVerifier(authority, locks) };
  }

  it("accepts valid JWT-SVIDs and X509-SVIDs, and refuses them once the subject is locked", async () => {
    const { authority, locks, issuer, verifier } = await setup();
    const spiffeId = "spiffe://mandate.local/agent/a";
    const token = await authority.jwtSvidSigner.mintJwtSvid({ spiffeId, audience: ["svc"], ttlSeconds: 300 });
    expect((await verifier.verifyJwtSvid(token, "svc")).spiffeId.uri).toBe(spiffeId);
    await expect(verifier.verifyJwtSvid(token, "other")).rejects.toMatchObject({ code: "JWT_AUDIENCE_MISMATCH" });

    const svid = await issuer.issue({
      csr: parseCsr((await generateKeyAndCsr()).csrPem),
      spiffeId,
      agentName: "a",
      instanceId: null,
      ttlMs: 3600_000,
      audit: () => ({ type: "identity.issue", code: "OK", actor: { kind: "system" }, outcome: { status: "ok" } }),
    });
    const chain = pemDecodeAll(svid.chainPem);
    expect(verifier.verifyX509Svid(chain).serialHex).toBe(svid.serialHex);

    const lock = await locks.add({ kind: "serial", value: svid.serialHex, reason: "stolen", createdBy: "test" });
    expect(() => verifier.verifyX509Svid(chain)).toThrow(expect.objectContaining({ code: "LOCKED" }));
    await expect(verifier.verifyJwtSvid(token, "svc")).resolves.toBeTruthy();
    await locks.add({ kind: "agent", value: "a", reason: "incident", createdBy: "test" });
    await expect(verifier.verifyJwtSvid(token, "svc")).rejects.toMatchObject({ code: "LOCKED" });
    expect(lock.id).toMatch(/^lock-/);
  });

  it("still accepts tokens signed by a retired JWT key while that key stays in the bundle", async () => {
    const { authority, verifier } = await setup();
    const token = await authority.jwtSvidSigner.mintJwtSvid({ spiffeId: "spiffe://mandate.local/agent/a", audience: ["svc"], ttlSeconds: 60 });
    await authority.prepareRotation();
    await authority.activateRotation();
    await expect(verifier.verifyJwtSvid(token, "svc")).resolves.toBeTruthy();
  });
});
