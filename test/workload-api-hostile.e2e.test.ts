import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { CredentialDirSource, runDaemon, startDaemonWorkloadApi } from "../src/agent/index.js";
import { loadWorkloadApi } from "../src/agent/workload-api/index.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";

async function until(check: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Writes bytes that are not gRPC (or not even HTTP/2) and waits until the daemon hangs up or a second passes. */
function sendGarbage(socketPath: string, payload: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(socketPath, () => socket.end(payload));
    const timer = setTimeout(() => socket.destroy(), 1000);
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.resume();
  });
}

describe("the daemon's Workload API under hostile and heavy use", () => {
  it("serves 1,000 concurrent attested FetchX509SVID streams a rotation each, survives garbage frames and malformed messages with clear errors, and frees every stream", async () => {
    const dataDir = await tempDir();
    const work = await tempDir();
    // Long enough that the first renewal comes after all 1,000 streams are open, even on a loaded machine.
    const plane = await startTestControlPlane({ dataDir, svidTtlMs: 40_000 });
    const creds = join(work, "creds");
    const source = new CredentialDirSource(creds);
    const api = await startDaemonWorkloadApi({ socketPath: join(work, "agent.sock"), source, log: () => undefined });
    const controller = new AbortController();
    const { client: WorkloadClient } = loadWorkloadApi();
    // Ten connections (a local subchannel pool each) carrying 100 streams apiece.
    const clients = Array.from({ length: 10 }, () => new WorkloadClient(api.server.endpoint, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }) as grpc.Client & Record<string, any>);
    const header = new grpc.Metadata();
    header.set("workload.spiffe.io", "true");
    const calls: grpc.ClientReadableStream<any>[] = [];
    try {
      const added = await mandate("agents", "add", "busy", "--data-dir", dataDir, "--format", "json", "--selector", `unix:uid:${process.getuid!()}`);
      const daemonLog: string[] = [];
      const daemon = runDaemon({ outDir: creds, authServer: plane.url, joinToken: added.json().token, signal: controller.signal, log: (m) => daemonLog.push(m), onRenewed: () => source.refresh() }).catch((e: unknown) => e);
      await until(() => source.current() !== undefined, "the daemon to join");
      const firstSerial = source.current()!.svids[0]!.certChainDer[0]!;

      const heapBefore = process.memoryUsage().heapUsed;
      const received = new Array<Buffer[]>(1000);
      const errors: grpc.ServiceError[] = [];
      for (let i = 0; i < 1000; i++) {
        received[i] = [];
        const call = clients[i % 10]!.FetchX509SVID({}, header);
        call.on("data", (message: { svids: { x509_svid: Buffer }[] }) => received[i]!.push(message.svids[0]!.x509_svid));
        call.on("error", (error: grpc.ServiceError) => error.code !== grpc.status.CANCELLED && errors.push(error));
        calls.push(call);
      }
      await until(() => received.every((r) => r.length >= 1), "1,000 first messages", 60_000);
      expect(api.server.activeStreams()).toBe(1000);
      expect(received.every((r) => r[0]!.subarray(0, firstSerial.length).equals(firstSerial))).toBe(true);

      // Hostile bytes on the same socket while the streams are open.
      await sendGarbage(api.server.socketPath, randomBytes(8192));
      await sendGarbage(api.server.socketPath, Buffer.from("GET /SpiffeWorkloadAPI/FetchX509SVID HTTP/1.1\r\nHost: x\r\n\r\n"));
      await sendGarbage(api.server.socketPath, Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Buffer.from([0x00, 0x40, 0x00, 0x01, 0xff, 0x7f, 0xff, 0xff, 0xff]), randomBytes(1024)]));
      // A well-formed gRPC call whose message is not the protobuf the contract defines.
      const malformed = await new Promise<grpc.ServiceError>((resolve) =>
        clients[0]!.makeUnaryRequest("/SpiffeWorkloadAPI/FetchJWTSVID", (b: Buffer) => b, (b: Buffer) => b, Buffer.from([0x12, 0x80]), header, (error: grpc.ServiceError | null) => resolve(error!)),
      );
      // Field 2's length is a varint cut off in the middle: the message cannot be decoded.
      expect(malformed.code).toBe(grpc.status.INTERNAL);
      expect(malformed.details).toMatch(/deserializ/i);

      // The next renewal reaches every one of the 1,000 open streams.
      const leaf = () => source.current()!.svids[0]!.certChainDer[0]!;
      const before = leaf();
      await until(() => !leaf().equals(before), "the daemon's next renewal", 60_000).catch((e) => {
        console.log("DEBUG", daemonLog.join("\n"));
        throw e;
      });
      const renewed = leaf();
      const hasRenewed = (r: Buffer[]) => r.some((m) => m.subarray(0, renewed.length).equals(renewed));
      await until(() => received.every(hasRenewed), "the rotation on every stream", 60_000);
      expect(received.every((r) => r.length >= 2)).toBe(true);
      expect(errors).toEqual([]);
      // Client and server share this process, so this bounds both: far below the 150 MB daemon target.
      expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(150 * 1024 * 1024);

      for (const call of calls) call.cancel();
      await until(() => api.server.activeStreams() === 0, "every stream to be released");
      controller.abort();
      expect(await daemon).toBeUndefined();
    } finally {
      controller.abort();
      for (const call of calls) call.cancel();
      for (const client of clients) client.close();
      await api.close();
      await plane.close();
      await rm(dataDir, { recursive: true, force: true, maxRetries: 5 });
      await rm(work, { recursive: true, force: true, maxRetries: 5 });
    }
  }, 240_000);
});
