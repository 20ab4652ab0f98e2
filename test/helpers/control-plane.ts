import { rm } from "node:fs/promises";
import { type ControlPlane, type ControlPlaneOptions, startControlPlane } from "../../src/server/index.js";
import { availableBackends, tempDir } from "./backends.js";

/** A control plane on an ephemeral loopback port, with fast timers for tests. */
export async function startTestControlPlane(overrides: Partial<ControlPlaneOptions> = {}): Promise<ControlPlane> {
  return startControlPlane({
    dataDir: overrides.dataDir ?? (await tempDir()),
    listen: "127.0.0.1:0",
    lockPollMs: 100,
    maintenanceIntervalMs: 200,
    caActivationDelayMs: 0,
    logLevel: "silent",
    ...overrides,
  });
}

/** Stops a test plane (if it started) and deletes its data directory. */
export async function closeTestControlPlane(plane: ControlPlane | undefined): Promise<void> {
  if (!plane) return;
  await plane.close();
  await rm(plane.dataDir, { recursive: true, force: true });
}

export { availableBackends };
