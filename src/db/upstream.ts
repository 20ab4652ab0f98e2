import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { readFileSync } from "node:fs";
import { BodyReader, type Frame, FrameReader, cancelRequest, cstring, frame, int32, parseErrorFields, sslRequest, startupMessage } from "./protocol.js";
import { ScramClient, md5Password } from "./scram.js";

export type UpstreamSslMode = "disable" | "prefer" | "require" | "verify-full";

export interface UpstreamTarget {
  host: string;
  port: number;
  database: string;
  user: string;
  /** undefined for trust authentication */
  password?: string | undefined;
  sslMode: UpstreamSslMode;
  /** CA file for verify-full */
  sslRootCert?: string | undefined;
  /** forwarded startup parameters (application_name, client_encoding, …) */
  params?: Record<string, string>;
  connectTimeoutMs?: number;
}

export interface UpstreamConnection {
  socket: Socket;
  /** ParameterStatus frames, relayed to the client as they came */
  parameterFrames: Buffer[];
  processId: number;
  secretKey: Buffer;
  /** frames read past the first ReadyForQuery (normally none) */
  reader: FrameReader;
  leftovers: Frame[];
}

/** An upstream refusal (bad password, unknown database) with the server's own fields. */
export class UpstreamError extends Error {
  constructor(
    message: string,
    readonly sqlState: string,
  ) {
    super(message);
  }
}

/** Opens an authenticated connection to the real server, ready for queries. */
export async function connectUpstream(target: UpstreamTarget): Promise<UpstreamConnection> {
  let socket = await openSocket(target);
  try {
    if (target.sslMode !== "disable") socket = await negotiateTls(socket, target);
    return await authenticate(socket, target);
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

function openSocket(target: UpstreamTarget): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host: target.host, port: target.port });
    socket.setNoDelay(true);
    const timer = setTimeout(() => socket.destroy(new Error(`connecting to ${target.host}:${target.port} timed out`)), target.connectTimeoutMs ?? 10_000);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeListener("error", onError);
      resolve(socket);
    });
    const onError = (error: Error) => {
      clearTimeout(timer);
      reject(new UpstreamError(`cannot reach the database server ${target.host}:${target.port}: ${error.message}`, "08001"));
    };
    socket.once("error", onError);
  });
}

async function negotiateTls(socket: Socket, target: UpstreamTarget): Promise<Socket> {
  socket.write(sslRequest());
  const answer = await readBytes(socket, 1);
  if (answer[0] === 0x4e /* N */) {
    if (target.sslMode === "prefer") return socket;
    throw new UpstreamError(`the database server ${target.host}:${target.port} does not offer TLS (sslmode=${target.sslMode})`, "08001");
  }
  if (answer[0] !== 0x53 /* S */) throw new UpstreamError("the database server answered the SSL request with garbage", "08P01");
  const verify = target.sslMode === "verify-full";
  return new Promise((resolve, reject) => {
    const tls = tlsConnect({
      socket,
      servername: /^[\d.:]+$/.test(target.host) ? undefined : target.host,
      rejectUnauthorized: verify,
      ...(verify && target.sslRootCert ? { ca: readFileSync(target.sslRootCert) } : {}),
      minVersion: "TLSv1.2",
    });
    tls.once("secureConnect", () => resolve(tls));
    tls.once("error", (error) => reject(new UpstreamError(`TLS to the database server failed: ${error.message}`, "08001")));
  });
}

function readBytes(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length >= n) {
        cleanup();
        if (got.length > n) socket.unshift(got.subarray(n));
        resolve(got.subarray(0, n));
      }
    };
    const onEnd = () => {
      cleanup();
      reject(new UpstreamError("the database server closed the connection", "08006"));
    };
    const cleanup = () => {
      socket.removeListener("data", onData);
      socket.removeListener("end", onEnd);
      socket.removeListener("error", onEnd);
    };
    socket.on("data", onData);
    socket.once("end", onEnd);
    socket.once("error", onEnd);
  });
}

function authenticate(socket: Socket, target: UpstreamTarget): Promise<UpstreamConnection> {
  return new Promise((resolve, reject) => {
    const reader = new FrameReader();
    const parameterFrames: Buffer[] = [];
    let processId = 0;
    let secretKey = Buffer.alloc(4);
    let scram: ScramClient | undefined;
    const timer = setTimeout(() => fail(new UpstreamError("the database server did not finish authentication in time", "08006")), target.connectTimeoutMs ?? 10_000);
    const fail = (error: Error) => {
      clearTimeout(timer);
      socket.removeListener("data", onData);
      reject(error);
    };
    const needPassword = () => {
      if (target.password === undefined) throw new UpstreamError(`the database server wants a password for ${target.user}, and none is registered (db add --user-secret / --db-user NAME=REF)`, "28P01");
      return target.password;
    };
    const onData = (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = reader.push(chunk);
        for (let i = 0; i < frames.length; i++) {
          const f = frames[i]!;
          if (f.type === "R") {
            const body = new BodyReader(f.body);
            const code = body.int32();
            if (code === 0) continue;
            if (code === 3) socket.write(frame("p", cstring(needPassword())));
            else if (code === 5) socket.write(frame("p", cstring(md5Password(target.user, needPassword(), f.body.subarray(4, 8)))));
            else if (code === 10) {
              const mechanisms: string[] = [];
              for (let m = body.cstring(); m; m = body.remaining > 0 ? body.cstring() : "") mechanisms.push(m);
              if (!mechanisms.includes("SCRAM-SHA-256")) throw new UpstreamError(`the database server offers only ${mechanisms.join(", ")}; SCRAM-SHA-256 is supported`, "28000");
              scram = new ScramClient(needPassword());
              const first = Buffer.from(scram.clientFirstMessage());
              socket.write(frame("p", Buffer.concat([cstring("SCRAM-SHA-256"), int32(first.length), first])));
            } else if (code === 11) {
              if (!scram) throw new UpstreamError("unexpected SASL continue", "08P01");
              socket.write(frame("p", Buffer.from(scram.clientFinalMessage(f.body.toString("utf8", 4)))));
            } else if (code === 12) {
              if (!scram) throw new UpstreamError("unexpected SASL final", "08P01");
              scram.verifyServerFinal(f.body.toString("utf8", 4));
            } else throw new UpstreamError(`the database server asks for an unsupported authentication method (${code})`, "28000");
          } else if (f.type === "S") parameterFrames.push(Buffer.from(f.raw));
          else if (f.type === "K") {
            processId = f.body.readUInt32BE(0);
            secretKey = Buffer.from(f.body.subarray(4));
          } else if (f.type === "E") {
            const fields = parseErrorFields(f.body);
            throw new UpstreamError(fields.get("M") ?? "the database server refused the connection", fields.get("C") ?? "08006");
          } else if (f.type === "Z") {
            clearTimeout(timer);
            socket.removeListener("data", onData);
            socket.removeListener("error", onError);
            socket.removeListener("close", onClose);
            resolve({ socket, parameterFrames, processId, secretKey, reader, leftovers: frames.slice(i + 1) });
            return;
          }
          // NoticeResponse and NegotiateProtocolVersion during startup are ignored.
        }
      } catch (error) {
        fail(error instanceof Error ? error : new Error(String(error)));
      }
    };
    const onError = (error: Error) => fail(new UpstreamError(`the database connection failed: ${error.message}`, "08006"));
    const onClose = () => fail(new UpstreamError("the database server closed the connection during authentication", "08006"));
    socket.on("data", onData);
    socket.once("error", onError);
    socket.once("close", onClose);
    socket.write(startupMessage({ user: target.user, database: target.database, ...(target.params ?? {}) }));
  });
}

/** Asks the server to cancel what the connection with this key is running (a fresh connection, as the protocol requires). */
export function sendUpstreamCancel(target: Pick<UpstreamTarget, "host" | "port">, processId: number, secretKey: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: target.host, port: target.port });
    const done = () => {
      socket.destroy();
      resolve();
    };
    socket.once("connect", () => socket.end(cancelRequest(processId, secretKey)));
    socket.once("close", done);
    socket.once("error", done);
    setTimeout(done, 5000).unref();
  });
}
