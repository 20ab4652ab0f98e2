import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import { createServer, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, test } from "vitest";
import { FrameReader, cstring, frame, int32, readStartupPacket } from "./protocol.js";
import { UpstreamError, connectUpstream } from "./upstream.js";

/**
 * A scripted PostgreSQL server side of authentication, written from RFC 5802/7677 and the
 * protocol documentation (independently of the client), because the real server on this
 * machine trusts local connections and never asks for a password.
 */
function scramServer(password: string, method: "scram" | "md5"): Promise<{ server: Server; port: number; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((socket: Socket) => {
    let startup = Buffer.alloc(0);
    let user = "";
    const reader = new FrameReader();
    let clientFirstBare = "";
    let serverFirst = "";
    const salt = randomBytes(16);
    const iterations = 4096;
    const md5Salt = randomBytes(4);
    const fail = (message: string) => socket.end(frame("E", Buffer.concat([Buffer.from("SFATAL\0C28P01\0M"), cstring(message), Buffer.from([0])])));
    const ok = () => socket.write(Buffer.concat([frame("R", int32(0)), frame("S", Buffer.concat([cstring("server_version"), cstring("18.0")])), frame("K", Buffer.concat([int32(42), int32(7)])), frame("Z", Buffer.from("I"))]));
    socket.on("data", (chunk: Buffer) => {
      if (!user) {
        startup = Buffer.concat([startup, chunk]);
        const read = readStartupPacket(startup);
        if (!read || read.packet.kind !== "startup") return;
        user = read.packet.params.get("user")!;
        seen.push(`startup ${user}/${read.packet.params.get("database")}`);
        if (method === "md5") socket.write(frame("R", Buffer.concat([int32(5), md5Salt])));
        else socket.write(frame("R", Buffer.concat([int32(10), cstring("SCRAM-SHA-256-PLUS"), cstring("SCRAM-SHA-256"), Buffer.from([0])])));
        return;
      }
      for (const f of reader.push(chunk)) {
        const body = f.body;
        if (method === "md5") {
          const inner = createHash("md5").update(password + user).digest("hex");
          const expected = `md5${createHash("md5").update(Buffer.concat([Buffer.from(inner), md5Salt])).digest("hex")}`;
          seen.push("md5 response");
          if (body.toString("utf8", 0, body.length - 1) === expected) ok();
          else fail("password authentication failed");
          return;
        }
        if (!clientFirstBare) {
          const mechanismEnd = body.indexOf(0);
          seen.push(`mechanism ${body.toString("utf8", 0, mechanismEnd)}`);
          const length = body.readInt32BE(mechanismEnd + 1);
          const clientFirst = body.toString("utf8", mechanismEnd + 5, mechanismEnd + 5 + length);
          clientFirstBare = clientFirst.slice(3);
          const clientNonce = /r=([^,]+)/.exec(clientFirst)![1]!;
          serverFirst = `r=${clientNonce}${randomBytes(12).toString("base64")},s=${salt.toString("base64")},i=${iterations}`;
          socket.write(frame("R", Buffer.concat([int32(11), Buffer.from(serverFirst)])));
        } else {
          const clientFinal = body.toString("utf8");
          const withoutProof = clientFinal.slice(0, clientFinal.lastIndexOf(",p="));
          const proof = Buffer.from(clientFinal.slice(clientFinal.lastIndexOf(",p=") + 3), "base64");
          const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
          const clientKey = createHmac("sha256", salted).update("Client Key").digest();
          const storedKey = createHash("sha256").update(clientKey).digest();
          const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
          const signature = createHmac("sha256", storedKey).update(authMessage).digest();
          const recovered = Buffer.from(proof.map((b, i) => b ^ signature[i]!));
          if (!timingSafeEqual(createHash("sha256").update(recovered).digest(), storedKey)) return fail("password authentication failed");
          const serverSignature = createHmac("sha256", createHmac("sha256", salted).update("Server Key").digest()).update(authMessage).digest("base64");
          seen.push("proof verified");
          socket.write(frame("R", Buffer.concat([int32(12), Buffer.from(`v=${serverSignature}`)])));
          ok();
        }
      }
    });
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve({ server, port: (server.address() as AddressInfo).port, seen })));
}

let open: Server | undefined;
afterEach(() => {
  open?.close();
  open = undefined;
});

describe("upstream authentication", () => {
  test("SCRAM-SHA-256: the server verifies the proof and the client verifies the server", async () => {
    const { server, port, seen } = await scramServer("correct horse", "scram");
    open = server;
    const conn = await connectUpstream({ host: "127.0.0.1", port, database: "orders", user: "app", password: "correct horse", sslMode: "disable" });
    expect(seen).toEqual(["startup app/orders", "mechanism SCRAM-SHA-256", "proof verified"]);
    expect(conn.processId).toBe(42);
    expect(conn.parameterFrames).toHaveLength(1);
    conn.socket.destroy();
  });

  test("SCRAM with the wrong password is refused with the server's error", async () => {
    const { server, port } = await scramServer("correct horse", "scram");
    open = server;
    await expect(connectUpstream({ host: "127.0.0.1", port, database: "orders", user: "app", password: "wrong", sslMode: "disable" })).rejects.toMatchObject({ sqlState: "28P01" });
  });

  test("md5", async () => {
    const { server, port, seen } = await scramServer("s3cret", "md5");
    open = server;
    const conn = await connectUpstream({ host: "127.0.0.1", port, database: "orders", user: "app", password: "s3cret", sslMode: "disable" });
    expect(seen).toEqual(["startup app/orders", "md5 response"]);
    conn.socket.destroy();
  });

  test("a password the server asks for but none is registered is a clear error", async () => {
    const { server, port } = await scramServer("x", "scram");
    open = server;
    await expect(connectUpstream({ host: "127.0.0.1", port, database: "orders", user: "app", sslMode: "disable" })).rejects.toThrow(UpstreamError);
  });

  test("an unreachable server", async () => {
    await expect(connectUpstream({ host: "127.0.0.1", port: 1, database: "d", user: "u", sslMode: "disable", connectTimeoutMs: 2000 })).rejects.toMatchObject({ sqlState: "08001" });
  });
});
