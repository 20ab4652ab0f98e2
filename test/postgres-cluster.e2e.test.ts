import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCredentials } from "../src/agent/index.js";
import type { ControlPlane } from "../src/server/index.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { freshPostgresDatabase, postgresBaseUrl } from "./helpers/postgres.js";

const base = await postgresBaseUrl();

describe.skipIf(!base)("two control planes sharing one PostgreSQL", () => {
  let a: ControlPlane;
  let b: ControlPlane;
  let drop: () => Promise<void>;
  const dirs: string[] = [];

  beforeAll(async () => {
    const db = await freshPostgresDatabase(base!);
    drop = db.drop;
    const [dirA, dirB, work] = [await tempDir(), await tempDir(), await tempDir()];
    dirs.push(dirA, dirB, work);
    // Started together: the init lock must make exactly one of them create the CA.
    [a, b] = await Promise.all([
      startTestControlPlane({ dataDir: dirA, storage: db.url, trustDomain: "cluster.test", lockPollMs: 200 }),
      startTestControlPlane({ dataDir: dirB, storage: db.url, trustDomain: "cluster.test", lockPollMs: 200 }),
    ]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await drop?.();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("issue from the same CA", async () => {
    expect([a.created, b.created].filter(Boolean)).toHaveLength(1);
    expect(a.context.authority.caPin).toBe(b.context.authority.caPin);
    expect(a.context.authority.x509Signer.authorityId).toBe(b.context.authority.x509Signer.authorityId);
  });

  it("a token made on one joins on the other, and renewal works on either", async () => {
    const added = await mandate("agents", "add", "worker", "--data-dir", a.dataDir, "--format", "json");
    expect(added.code, added.stderr).toBe(0);
    const creds = join(dirs[2]!, "creds");
    const joined = await mandate("daemon", "--auth-server", b.url, "--join-token", added.json().token, "--out", creds, "--oneshot");
    expect(joined.code, joined.stderr).toBe(0);
    const state = (await readCredentials(creds))!.state;
    expect(state.spiffeId).toBe("spiffe://cluster.test/agent/worker");
    const shown = await mandate("agents", "show", "worker", "--data-dir", a.dataDir, "--format", "json");
    expect(shown.json().instances).toHaveLength(1);
  });

  it("a lock written through one is enforced by the other within a second", async () => {
    const creds = join(dirs[2]!, "creds");
    const credentials = (await readCredentials(creds))!;
    const { agentClient } = await import("../src/agent/index.js");
    // Talk to B directly, so only B's lock view decides.
    const clientB = agentClient({ ...credentials, state: { ...credentials.state, authServer: b.url } });
    try {
      await expect(clientB.request("POST", "/v1/svid/jwt", { audience: ["x"] })).resolves.toBeTruthy();
      const locked = await mandate("locks", "add", "--agent", "worker", "--reason", "cluster test", "--data-dir", a.dataDir);
      expect(locked.code, locked.stderr).toBe(0);
      const t0 = Date.now();
      let seenAfter = -1;
      while (Date.now() - t0 < 1000) {
        const outcome = await clientB.request("POST", "/v1/svid/jwt", { audience: ["x"] }).then(
          () => "allowed",
          (error: { code?: string }) => error.code,
        );
        if (outcome === "LOCKED") {
          seenAfter = Date.now() - t0;
          break;
        }
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(seenAfter).toBeGreaterThanOrEqual(0);
      expect(seenAfter).toBeLessThan(1000);
    } finally {
      clientB.close();
    }
  });

  it("a rotation on one is picked up by the other", async () => {
    const rotated = await mandate("ca", "rotate", "--data-dir", a.dataDir, "--format", "json");
    expect(rotated.code, rotated.stderr).toBe(0);
    const activated = await mandate("ca", "rotate", "--activate", "--force", "--data-dir", a.dataDir, "--format", "json");
    expect(activated.code, activated.stderr).toBe(0);
    await b.maintain();
    expect(b.context.authority.x509Signer.authorityId).toBe(activated.json().intermediateId);
  });
});
