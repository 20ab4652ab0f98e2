import { X509Certificate } from "node:crypto";
import { createServer } from "node:net";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { CredentialDirSource, readCredentials, runDaemon, startDaemonWorkloadApi } from "../src/agent/index.js";
import { loadWorkloadApi } from "../src/agent/workload-api/index.js";
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
  it("keeps the last SVID while the control plane is down, says so, and renews when it returns; the rotation reaches an open Workload API stream", async () => {
    const dataDir = await tempDir();
    const work = await tempDir();
    const port = await freePort();
    const start = () => startTestControlPlane({ dataDir, listen: `127.0.0.1:${port}`, svidTtlMs: 6000 });
    let plane: ControlPlane | undefined = await start();
    const controller = new AbortController();
    const logs: string[] = [];
    const creds = join(work, "creds");
    const source = new CredentialDirSource(creds);
    const api = await startDaemonWorkloadApi({ socketPath: join(work, "agent.sock"), source, log: (m) => logs.push(m) });
    const { client: WorkloadClient } = loadWorkloadApi();
    const client = new WorkloadClient(api.server.endpoint, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
    const streamed: string[] = [];
    let stream: grpc.ClientReadableStream<{ svids: { x509_svid: Buffer }[] }> | undefined;
    try {
      const added = await mandate("agents", "add", "steady", "--data-dir", dataDir, "--format", "json");
      const daemon = runDaemon({ outDir: creds, authServer: plane.url, joinToken: added.json().token, signal: controller.signal, log: (m) => logs.push(m), onRenewed: () => source.refresh() }).catch((e: unknown) => e);
      expect(await waitFor(async () => (await readCredentials(creds)) !== undefined && source.current() !== undefined, 5000)).toBe(true);
      const joinedSerial = (await readCredentials(creds))!.state.serial;
      const header = new grpc.Metadata();
      header.set("workload.spiffe.io", "true");
      stream = client.FetchX509SVID({}, header) as typeof stream;
      stream!.on("data", (message) => streamed.push(new X509Certificate(message.svids[0]!.x509_svid).serialNumber.toLowerCase()));
      stream!.on("error", () => undefined);
      expect(await waitFor(async () => streamed.length === 1, 5000)).toBe(true);
      expect(streamed[0]!.replace(/^0+/, "")).toBe(joinedSerial.toLowerCase().replace(/^0+/, ""));

      await plane.close();
      plane = undefined;
      // Longer than half the SVID's life: the daemon's renewal fails and it keeps the old SVID.
      expect(await waitFor(async () => logs.some((l) => l.includes("renewal failed")), 8000)).toBe(true);
      expect((await readCredentials(creds))!.state.serial).toBe(joinedSerial);
      expect(logs.find((l) => l.includes("renewal failed"))).toMatch(/valid for \d+s more|EXPIRED/);

      plane = await start();
      expect(await waitFor(async () => (await readCredentials(creds))!.state.serial !== joinedSerial, 10_000)).toBe(true);
      expect(logs.some((l) => l.startsWith("renewed"))).toBe(true);
      // The stream that stayed open through the outage receives the renewed SVID.
      const renewedSerial = (await readCredentials(creds))!.state.serial.toLowerCase().replace(/^0+/, "");
      expect(await waitFor(async () => streamed.some((s) => s.replace(/^0+/, "") === renewedSerial), 10_000)).toBe(true);
      controller.abort();
      expect(await daemon).toBeUndefined();
    } finally {
      controller.abort();
      stream?.cancel();
      client.close();
      await api.close();
      await plane?.close();
      await rm(dataDir, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
  }, 40_000);
});
