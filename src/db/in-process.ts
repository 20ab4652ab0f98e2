import { type Duplex, duplexPair } from "node:stream";
import type { AuthenticatedCaller } from "../policy/index.js";
import { ProtocolError, errorResponse, readStartupPacket } from "./protocol.js";
import { DEFAULT_USER_ALIAS, DbSession, type SessionDeps } from "./session.js";

/** Who an in-process connection acts for, fixed by the caller of `openInProcess`, not by the client's startup packet. */
export interface InProcessBinding {
  database: string;
  dbUser?: string | undefined;
  delegationToken?: string | undefined;
  /** where the caller came from, for the audit record */
  address: string;
}

/**
 * A PostgreSQL connection into the proxy without a network or TLS: one end of a stream
 * pair is handed to a `DbSession` exactly as the listener hands it a verified TLS socket,
 * the other end goes to a client (`pg.Client({ stream })`). The caller's identity comes
 * from whoever authenticated it (the MCP proxy), so every statement meets the same
 * classification, gate and journal as one sent over :7432.
 */
export function openInProcessSession(deps: SessionDeps, caller: AuthenticatedCaller, binding: InProcessBinding, track: (session: DbSession) => void): Duplex {
  const [client, server] = duplexPair();
  let buffer = Buffer.alloc(0);
  const onData = (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk]);
    let read;
    try {
      read = readStartupPacket(buffer);
    } catch (error) {
      return refuse((error as ProtocolError).sqlState ?? "08P01", (error as Error).message);
    }
    if (!read) return;
    server.removeListener("data", onData);
    const { packet } = read;
    if (packet.kind !== "startup") return refuse("08P01", "an in-process connection starts with a StartupMessage (no SSL, GSSAPI or cancel)");
    // The client's own startup says nothing about identity: database, user and delegation are the binding's.
    const params = new Map<string, string>();
    for (const [key, value] of packet.params) if (key !== "options" && key !== "database" && key !== "user" && !key.startsWith("mandate.")) params.set(key, value);
    params.set("database", binding.database);
    params.set("user", binding.dbUser ?? DEFAULT_USER_ALIAS);
    if (binding.delegationToken) params.set("mandate.delegation", binding.delegationToken);
    server.pause();
    const session = new DbSession(server, caller, binding.address, deps);
    track(session);
    void session.start(packet.version, params, buffer.subarray(read.consumed)).finally(() => server.resume());
  };
  const refuse = (code: string, message: string) => {
    server.removeListener("data", onData);
    server.end(errorResponse({ severity: "FATAL", code, message }));
  };
  server.on("data", onData);
  server.on("error", () => server.destroy());
  return asSocket(client);
}

/** The few net.Socket methods `pg` calls on a stream it is given. */
function asSocket(stream: Duplex): Duplex {
  return Object.assign(stream, {
    connect() {
      process.nextTick(() => stream.emit("connect"));
      return stream;
    },
    setNoDelay: () => stream,
    setKeepAlive: () => stream,
    ref: () => stream,
    unref: () => stream,
  });
}
