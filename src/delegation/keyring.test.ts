import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Store } from "../store/index.js";
import { DelegationKeyring, ROTATE_AFTER_MS } from "./keyring.js";
import { MAX_GRANT_TTL_MS } from "./limits.js";

describe("delegation signing keys", () => {
  let dir: string;
  let store: Store;
  const clock = { t: Date.UTC(2026, 0, 1) };
  const now = () => clock.t;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "mandate-keyring-"));
    store = await Store.open({ dataDir: dir });
  });
  afterAll(async () => {
    await store?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("one key per trust domain, shared; rotated when due; a retired key verifies until its tokens are dead", async () => {
    const [a, b] = await Promise.all([DelegationKeyring.open(store, now), DelegationKeyring.open(store, now)]);
    const first = a.current().kid;
    expect(b.current().kid).toBe(first);

    await a.rotateIfDue();
    expect(a.current().kid).toBe(first);

    clock.t += ROTATE_AFTER_MS;
    await a.rotateIfDue();
    const second = a.current().kid;
    expect(second).not.toBe(first);
    expect(a.all().map((k) => k.kid)).toEqual([first, second]);
    // The other control plane learns the new kid when a token names it.
    clock.t += 2000;
    expect((await b.find(second))?.kid).toBe(second);
    expect((await b.find(first))?.kid).toBe(first);

    // Both rotating at once: one wins, both end up with the same list.
    clock.t += ROTATE_AFTER_MS;
    await Promise.all([a.rotateIfDue(), b.rotateIfDue()]);
    clock.t += 2000;
    await a.find("reload");
    await b.find("reload");
    expect(a.all().map((k) => k.kid)).toEqual(b.all().map((k) => k.kid));
    expect(a.all()).toHaveLength(2);
    expect(a.all().map((k) => k.kid)).not.toContain(first);
    expect(a.all()[0]!.kid).toBe(second);
    expect(ROTATE_AFTER_MS).toBeGreaterThan(MAX_GRANT_TTL_MS);
  });
});
