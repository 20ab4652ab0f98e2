import { spawn } from "node:child_process";
import { X509Certificate, createHash } from "node:crypto";
import { chmod, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { CredentialDirSource, runDaemon, startDaemonWorkloadApi } from "../src/agent/index.js";
import { loadWorkloadApi } from "../src/agent/workload-api/index.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";

const CLIENT = fileURLToPath(new URL("./fixtures/workload-client.mjs", import.meta.url));
const isRoot = process.getuid?.() === 0;
if (!isRoot) console.warn("[skip] the other-uid denial needs root here to start the client as uid 65534; the same-uid checks still run");

/** Runs the contract-only client in its own process, optionally as another user. */
function runClient(endpoint: string, rpc: "x509" | "jwt", uid?: number): Promise<{ ok: boolean; code?: number; details?: string; spiffeIds?: string[]; uid: number; pid: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLIENT, rpc], {
      env: { PATH: process.env.PATH ?? "", SPIFFE_ENDPOINT_SOCKET: endpoint },
      stdio: ["ignore", "pipe", "pipe"],
      ...(uid === undefined ? {} : { uid, gid: uid }),
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.once("error", reject);
    child.once("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`client exited ${code}: ${err}`))));
  });
}

describe("mandate daemon serving the SPIFFE Workload API", () => {
  it("serves the joined SVID to attested processes only, pushes the renewed one on the open stream, mints and validates JWT-SVIDs, and denies (and audits) a process of another uid", async () => {
    const dataDir = await tempDir();
    const work = await tempDir();
    // The client may run as another user: it must reach the socket to be refused by attestation, not by the file system.
    await chmod(work, 0o755);
    const plane = await startTestControlPlane({ dataDir, svidTtlMs: 6000 });
    const controller = new AbortController();
    const creds = join(work, "creds");
    const source = new CredentialDirSource(creds);
    const logs: string[] = [];
    const api = await startDaemonWorkloadApi({ socketPath: join(work, "agent.sock"), source, log: (m) => logs.push(m) });
    const server = api.server;
    const { client: WorkloadClient } = loadWorkloadApi();
    const client = new WorkloadClient(server.endpoint, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
    const header = new grpc.Metadata();
    header.set("workload.spiffe.io", "true");
    try {
      // This test process and its children run node as this uid: exactly what the selectors allow.
      const nodeHash = createHash("sha256").update(await readFile(process.execPath)).digest("hex");
      const added = await mandate(
        "agents", "add", "served", "--data-dir", dataDir, "--format", "json",
        "--selector", `unix:uid:${process.getuid!()}`, "--selector", `unix:path:${process.execPath}`, "--selector", `unix:sha256:${nodeHash}`,
      );
      expect(added.code, added.stderr).toBe(0);
      expect(added.json().agent.selectors).toHaveLength(3);
      const daemon = runDaemon({ outDir: creds, authServer: plane.url, joinToken: added.json().token, signal: controller.signal, onRenewed: () => source.refresh() }).catch((e: unknown) => e);

      // Until the first join completes the API answers UNAVAILABLE (clients retry, as the spec says).
      const deadline = Date.now() + 10_000;
      while (!source.current() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(source.current()?.svids[0]?.selectors).toEqual(added.json().agent.selectors);
      const serials: string[] = [];
      const stream = client.FetchX509SVID({}, header);
      const twoMessages = new Promise<void>((resolve, reject) => {
        stream.on("data", (message: { svids: { spiffe_id: string; x509_svid: Buffer }[] }) => {
          expect(message.svids[0]!.spiffe_id).toBe("spiffe://mandate.local/agent/served");
          serials.push(new X509Certificate(message.svids[0]!.x509_svid).serialNumber);
          if (serials.length === 2) resolve();
        });
        stream.on("error", (error: grpc.ServiceError) => (error.code === grpc.status.CANCELLED ? undefined : reject(error)));
      });
      await Promise.race([twoMessages, new Promise((_, reject) => setTimeout(() => reject(new Error(`only ${serials.length} message(s)`)), 15_000))]);
      expect(serials[0]).not.toBe(serials[1]);
      stream.cancel();

      const call = (method: string, request: object) =>
        new Promise<any>((resolve, reject) => client[method](request, header, (error: grpc.ServiceError | null, response: any) => (error ? reject(error) : resolve(response))));
      const jwt = await call("FetchJWTSVID", { audience: ["db-proxy"] });
      const token = jwt.svids[0].svid as string;
      // Reused until half its life for the same audience; another audience gets its own token.
      expect((await call("FetchJWTSVID", { audience: ["db-proxy"] })).svids[0].svid).toBe(token);
      expect((await call("FetchJWTSVID", { audience: ["mcp-proxy"] })).svids[0].svid).not.toBe(token);
      const validated = await call("ValidateJWTSVID", { audience: "db-proxy", svid: token });
      expect(validated.spiffe_id).toBe("spiffe://mandate.local/agent/served");
      await expect(call("ValidateJWTSVID", { audience: "elsewhere", svid: token })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });

      // Another process of the same user running the same node binary matches every selector.
      const sibling = await runClient(server.endpoint, "x509");
      expect(sibling).toMatchObject({ ok: true, spiffeIds: ["spiffe://mandate.local/agent/served"] });

      if (isRoot) {
        const stranger = await runClient(server.endpoint, "jwt", 65534);
        expect(stranger.uid).toBe(65534);
        expect(stranger).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
        expect(stranger.details).toMatch(/uid 65534/);
        const streamed = await runClient(server.endpoint, "x509", 65534);
        expect(streamed).toMatchObject({ ok: false, code: grpc.status.PERMISSION_DENIED });
        expect(logs.some((l) => l.includes("DENIED") && l.includes(`pid ${stranger.pid} uid 65534`))).toBe(true);

        // The refusal is reported to the control plane and lands in the audit log.
        await api.denials.flush();
        const events = await mandate("audit", "search", "--type", "workload.attestation_denied", "--data-dir", dataDir, "--format", "json");
        const denied = events.json<{ target: { pid: number; uid: number; path: string }; decision: { reasons: string[] }; actor: { agent: string } }[]>();
        const forStranger = denied.find((e) => e.target.pid === stranger.pid);
        expect(forStranger).toMatchObject({ target: { uid: 65534, path: process.execPath }, actor: { agent: "served" } });
        expect(forStranger!.decision.reasons[0]).toMatch(/unix:uid:\d+ does not match/);
      }

      // Selectors changed by the admin reach the daemon at its next renewal: this uid no longer matches.
      expect((await mandate("agents", "update", "served", "--selector", "unix:uid:4242", "--data-dir", dataDir)).code).toBe(0);
      const until = Date.now() + 15_000;
      while (source.current()?.svids[0]?.selectors?.[0] !== "unix:uid:4242" && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      await expect(call("FetchJWTSVID", { audience: ["db-proxy"] })).rejects.toMatchObject({ code: grpc.status.PERMISSION_DENIED });

      controller.abort();
      expect(await daemon).toBeUndefined();
    } finally {
      controller.abort();
      client.close();
      await api.close();
      await plane.close();
      await rm(dataDir, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
  }, 60_000);
});
