import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { connect as tlsConnect } from "node:tls";
import type { ControlPlane } from "../src/server/index.js";
import { cancelRequest, cstring, frame, int32, startupMessage } from "../src/db/protocol.js";
import { joinTestAgent, type TestAgent } from "./helpers/agent.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { RawPgClient, classGate, dbPort, directClient, errorsIn, proxyClient, registerDatabase } from "./helpers/db.js";

let plane: ControlPlane;
let reader: TestAgent;
let admin: TestAgent;
const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]);
const GSSENC_REQUEST = Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x30]);

beforeAll(async () => {
  plane = await startTestControlPlane({ accessGate: classGate(), db: { listen: "127.0.0.1:0" } });
  await registerDatabase(plane, "orders");
  reader = await joinTestAgent(plane, "reader-hostile");
  // pg_sleep is a function call, which a read-only role may not make.
  admin = await joinTestAgent(plane, "admin-hostile");
}, 60_000);

afterAll(async () => {
  await plane?.close();
});

/** SSLRequest, then a TLS handshake with these client options; `closed` resolves with all the server said. */
async function tlsSession(options: { cert?: Buffer; key?: Buffer }) {
  const raw = await RawPgClient.plain(dbPort(plane));
  raw.send(SSL_REQUEST);
  await raw.bytes(1);
  raw.socket.removeAllListeners("data");
  const tls = tlsConnect({ socket: raw.socket, ...options, rejectUnauthorized: false });
  await new Promise((resolve) => tls.once("secureConnect", resolve));
  let said = "";
  tls.on("data", (c: Buffer) => (said += c.toString("latin1")));
  const closed = new Promise<string>((resolve) => tls.once("close", () => resolve(said)));
  return { tls, closed };
}

async function stillServes(): Promise<void> {
  const client = proxyClient(plane, reader, "orders");
  await client.connect();
  expect((await client.query("SELECT 7 AS n")).rows).toEqual([{ n: 7 }]);
  await client.end();
}

describe("SSL negotiation games", () => {
  test("a plaintext StartupMessage is refused: TLS is required", async () => {
    const raw = await RawPgClient.plain(dbPort(plane));
    raw.send(startupMessage({ user: "postgres", database: "orders" }));
    const said = await raw.closedWith();
    expect(said).toContain("28000");
    expect(said).toContain("requires TLS with an X509-SVID");
  });

  test("GSSENCRequest is declined, then SSLRequest is accepted", async () => {
    const raw = await RawPgClient.plain(dbPort(plane));
    raw.send(GSSENC_REQUEST);
    expect((await raw.bytes(1)).toString()).toBe("N");
    raw.send(SSL_REQUEST);
    expect((await raw.bytes(1)).toString()).toBe("S");
    raw.close();
  });

  test("bytes piggybacked after the SSLRequest are refused (no plaintext injected before the handshake)", async () => {
    const raw = await RawPgClient.plain(dbPort(plane));
    raw.send(Buffer.concat([SSL_REQUEST, frame("Q", cstring("DROP TABLE x"))]));
    const said = await raw.closedWith();
    expect(said).toContain("unexpected data after SSLRequest");
  });

  test("a second SSLRequest inside TLS is a protocol violation", async () => {
    const { readFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const session = await tlsSession({ cert: readFileSync(join(reader.credentialDir, "svid.pem")), key: readFileSync(join(reader.credentialDir, "svid_key.pem")) });
    session.tls.write(SSL_REQUEST);
    expect(await session.closed).toContain("second SSLRequest");
  });

  test("TLS without a client certificate is refused with a clear error", async () => {
    const session = await tlsSession({});
    expect(await session.closed).toContain("certificate login failed");
  });
});

describe("malformed and oversized messages", () => {
  test("a startup packet with an impossible length", async () => {
    const raw = await RawPgClient.plain(dbPort(plane));
    raw.send(Buffer.from([0, 0, 0, 3, 1, 2, 3, 4]));
    expect(await raw.closedWith()).toContain("invalid startup packet length");
  });

  test("an unsupported protocol version", async () => {
    const raw = await RawPgClient.plain(dbPort(plane));
    raw.send(Buffer.concat([int32(8), int32(2 << 16)]));
    expect(await raw.closedWith()).toContain("unsupported frontend protocol");
  });

  test("an unregistered database gets 3D000", async () => {
    const client = proxyClient(plane, reader, "no_such_db");
    await expect(client.connect()).rejects.toMatchObject({ code: "3D000" });
  });

  test("an oversized message after login ends the connection with 54000", async () => {
    const raw = await RawPgClient.login(plane, reader, "orders");
    const header = Buffer.alloc(5);
    header[0] = "Q".charCodeAt(0);
    header.writeUInt32BE(0x7fffffff, 1);
    raw.send(header);
    const said = await raw.closedWith();
    expect(said).toContain("54000");
  });

  test("an unknown message type ends the connection with 08P01", async () => {
    const raw = await RawPgClient.login(plane, reader, "orders");
    raw.send(frame("?", Buffer.from("junk")));
    expect(await raw.closedWith()).toContain("unexpected message type");
  });

  test("a truncated Bind is a clear error, not a crash", async () => {
    const raw = await RawPgClient.login(plane, reader, "orders");
    raw.send(Buffer.concat([frame("B", Buffer.from([0x61])), frame("S")]));
    const said = await raw.closedWith();
    expect(said).toMatch(/NUL-terminated|truncated|proxy error/);
  });

  test("after all of that the proxy still serves", stillServes);
});

describe("cancellation", () => {
  test("a client that disconnects mid-query leaves nothing running upstream", async () => {
    const app = `mandate-gone-${process.pid}`;
    const client = proxyClient(plane, admin, "orders");
    (client as unknown as { connectionParameters: { application_name: string } }).connectionParameters.application_name = app;
    client.on("error", () => undefined);
    await client.connect();
    const running = client.query("SELECT pg_sleep(30)").catch(() => undefined);
    const direct = directClient();
    await direct.connect();
    const active = async () => (await direct.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND state = 'active'", [app])).rows[0].n as number;
    for (let i = 0; i < 50 && (await active()) === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await active()).toBe(1);
    (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
    let n = 1;
    for (let i = 0; i < 60 && n > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      n = await active();
    }
    expect(n).toBe(0);
    await direct.end();
    await running;
  });

  test("a CancelRequest with the proxy's key cancels the upstream query; a wrong key does nothing", async () => {
    const client = proxyClient(plane, admin, "orders");
    await client.connect();
    const { processID, secretKey } = client as unknown as { processID: number; secretKey: number };
    const running = client.query("SELECT pg_sleep(20)").then(
      () => undefined,
      (e: { code?: string }) => e.code,
    );
    await new Promise((r) => setTimeout(r, 300));
    const send = async (key: number) => {
      const raw = await RawPgClient.plain(dbPort(plane));
      raw.send(cancelRequest(processID, int32(key)));
      await raw.closedWith();
    };
    await send((secretKey ^ 1) | 0);
    await new Promise((r) => setTimeout(r, 300));
    await send(secretKey);
    expect(await running).toBe("57014");
    expect((await client.query("SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }]);
    await client.end();
  });
});
