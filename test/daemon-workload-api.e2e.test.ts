import { X509Certificate } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { CredentialDirSource, runDaemon } from "../src/agent/index.js";
import { loadWorkloadApi, startWorkloadApiServer } from "../src/agent/workload-api/index.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";

describe("mandate daemon serving the SPIFFE Workload API", () => {
  it("serves the joined SVID, pushes the renewed one on the open stream, and mints and validates JWT-SVIDs", async () => {
    const dataDir = await tempDir();
    const work = await tempDir();
    const plane = await startTestControlPlane({ dataDir, svidTtlMs: 6000 });
    const controller = new AbortController();
    const creds = join(work, "creds");
    const source = new CredentialDirSource(creds);
    const server = await startWorkloadApiServer({ socketPath: join(work, "agent.sock"), source });
    const { client: WorkloadClient } = loadWorkloadApi();
    const client = new WorkloadClient(server.endpoint, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
    const header = new grpc.Metadata();
    header.set("workload.spiffe.io", "true");
    try {
      const added = await mandate("agents", "add", "served", "--data-dir", dataDir, "--format", "json");
      const daemon = runDaemon({ outDir: creds, authServer: plane.url, joinToken: added.json().token, signal: controller.signal, onRenewed: () => source.refresh() }).catch((e: unknown) => e);

      // Until the first join completes the API answers UNAVAILABLE (clients retry, as the spec says).
      const deadline = Date.now() + 10_000;
      while (!source.current() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
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
      const validated = await call("ValidateJWTSVID", { audience: "db-proxy", svid: token });
      expect(validated.spiffe_id).toBe("spiffe://mandate.local/agent/served");
      await expect(call("ValidateJWTSVID", { audience: "elsewhere", svid: token })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });

      controller.abort();
      expect(await daemon).toBeUndefined();
    } finally {
      controller.abort();
      client.close();
      await server.close();
      await plane.close();
      await rm(dataDir, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
  }, 40_000);
});
