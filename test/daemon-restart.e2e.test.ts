import { createServer } from "node:net";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readCredentials, runDaemon } from "../src/agent/index.js";
import type { ControlPlane } from "../src/server/index.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe("mandate daemon across a control-plane outage", () => {
  it("keeps the last SVID while the control plane is down, says so, and renews when it returns", async () => {
    const dataDir = await tempDir();
    const work = await tempDir();
    const port = await freePort();
    const start = () => startTestControlPlane({ dataDir, listen: `127.0.0.1:${port}`, svidTtlMs: 6000 });
    let plane: ControlPlane | undefined = await start();
    const controller = new AbortController();
    const logs: string[] = [];
    const creds = join(work, "creds");
    try {
      const added = await mandate("agents", "add", "steady", "--data-dir", dataDir, "--format", "json");
      const daemon = runDaemon({ outDir: creds, authServer: plane.url, joinToken: added.json().token, signal: controller.signal, log: (m) => logs.push(m) }).catch((e: unknown) => e);
      expect(await waitFor(async () => (await readCredentials(creds)) !== undefined, 5000)).toBe(true);
      const joinedSerial = (await readCredentials(creds))!.state.serial;

      await plane.close();
      plane = undefined;
      // Longer than half the SVID's life: the daemon's renewal fails and it keeps the old SVID.
      expect(await waitFor(async () => logs.some((l) => l.includes("renewal failed")), 8000)).toBe(true);
      expect((await readCredentials(creds))!.state.serial).toBe(joinedSerial);
      expect(logs.find((l) => l.includes("renewal failed"))).toMatch(/valid for \d+s more|EXPIRED/);

      plane = await start();
      expect(await waitFor(async () => (await readCredentials(creds))!.state.serial !== joinedSerial, 10_000)).toBe(true);
      expect(logs.some((l) => l.startsWith("renewed"))).toBe(true);
      controller.abort();
      expect(await daemon).toBeUndefined();
    } finally {
      controller.abort();
      await plane?.close();
      await rm(dataDir, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
  }, 40_000);
});
