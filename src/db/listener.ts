import { createServer, type Server, type Socket } from "node:net";
import { type SecureContextOptions, type Server as TlsServer, TLSSocket, createServer as createTlsServer } from "node:tls";
import { constants as cryptoConstants } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { AuthenticatedCaller } from "../policy/index.js";
import { ProtocolError, type StartupPacket, errorResponse, readStartupPacket } from "./protocol.js";
import { CancelKeys, DbSession, type SessionDeps } from "./session.js";

export interface DbListenerOptions {
  host: string;
  port: number;
  /** the control plane's server certificate and the trust bundle; a new object when either changes */
  tlsOptions: () => Pick<SecureContextOptions, "key" | "cert" | "ca">;
  /** SPIFFE checks of a TLS peer (chain, trust domain, expiry) → the caller; throws to refuse */
  verifyPeer: (socket: TLSSocket) => AuthenticatedCaller;
  deps: Omit<SessionDeps, "cancels">;
  /** how often open connections are re-checked for locks and expiry */
  identityPollMs?: number;
  startupTimeoutMs?: number;
}

/**
 * The PostgreSQL listener: SSLRequest → 'S' → TLS with the server certificate, the
 * client's X509-SVID verified as on the HTTPS listener, then a StartupMessage whose
 * `database` names a registered database and whose `user` names the database user to act
 * as. Plaintext startups, GSSAPI encryption and anything out of order get a clear FATAL.
 */
export class DbListener {
  private server: Server | undefined;
  private readonly sessions = new Set<DbSession>();
  private readonly sockets = new Set<Socket>();
  private readonly cancels = new CancelKeys();
  private poll: NodeJS.Timeout | undefined;
  private tls: TlsServer | undefined;
  private tlsApplied: object | undefined;
  /** upgraded sockets by peer address, until their handshake completes */
  private readonly handshaking = new Map<string, (socket: TLSSocket) => void>();

  constructor(private readonly options: DbListenerOptions) {}

  async start(): Promise<number> {
    this.server = createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      this.server!.once("error", reject);
      this.server!.listen({ host: this.options.host || "0.0.0.0", port: this.options.port }, () => resolve());
    });
    this.poll = setInterval(() => {
      for (const session of this.sessions) session.checkIdentity();
    }, this.options.identityPollMs ?? 1000);
    this.poll.unref();
    return (this.server.address() as AddressInfo).port;
  }

  get connections(): number {
    return this.sessions.size;
  }

  async close(): Promise<void> {
    if (this.poll) clearInterval(this.poll);
    for (const session of this.sessions) session.close("the proxy is shutting down");
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  private accept(raw: Socket): void {
    raw.setNoDelay(true);
    this.sockets.add(raw);
    raw.once("close", () => this.sockets.delete(raw));
    raw.on("error", () => raw.destroy());
    const address = raw.remoteAddress ?? "";
    const timer = setTimeout(() => refuse(raw, "08P01", "startup took too long"), this.options.startupTimeoutMs ?? 15_000);
    timer.unref();
    this.startupPhase(raw, undefined, address, timer);
  }

  /** Reads startup packets on `socket` (the raw socket, or the TLS socket once upgraded). */
  private startupPhase(socket: Socket, caller: AuthenticatedCaller | undefined, address: string, timer: NodeJS.Timeout): void {
    const tls = socket instanceof TLSSocket;
    let buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      let read: { packet: StartupPacket; consumed: number } | undefined;
      try {
        read = readStartupPacket(buffer);
      } catch (error) {
        socket.removeListener("data", onData);
        refuse(socket, (error as ProtocolError).sqlState ?? "08P01", (error as Error).message);
        return;
      }
      if (!read) return;
      const rest = buffer.subarray(read.consumed);
      buffer = Buffer.alloc(0);
      const { packet } = read;
      if (packet.kind === "gssenc") {
        if (tls) return fail("08P01", "GSSENCRequest inside TLS");
        socket.write("N");
        buffer = rest;
        if (rest.length) onData(Buffer.alloc(0));
        return;
      }
      socket.removeListener("data", onData);
      if (packet.kind === "ssl") {
        if (tls) return fail("08P01", "a second SSLRequest inside TLS is a protocol violation");
        // Bytes after the SSLRequest and before the handshake would be read as if encrypted: refuse them.
        if (rest.length) return fail("08P01", "unexpected data after SSLRequest");
        socket.write("S");
        this.upgrade(socket, address, timer);
        return;
      }
      if (packet.kind === "cancel") {
        clearTimeout(timer);
        void this.cancels.cancel(packet.processId, packet.secretKey).finally(() => socket.destroy());
        return;
      }
      if (!tls || !caller) {
        return fail("28000", "this Mandate database listener requires TLS with an X509-SVID client certificate: connect with sslmode=require and sslcert/sslkey set to the agent's svid.pem and svid_key.pem, or use `mandate db connect`");
      }
      clearTimeout(timer);
      socket.pause();
      const session = new DbSession(socket, caller, address, { ...this.options.deps, cancels: this.cancels });
      this.sessions.add(session);
      session.onClose = () => this.sessions.delete(session);
      void session.start(packet.version, packet.params, rest).finally(() => socket.resume());
    };
    const fail = (code: string, message: string) => {
      socket.removeListener("data", onData);
      clearTimeout(timer);
      refuse(socket, code, message);
    };
    socket.on("data", onData);
  }

  /**
   * A TLS server that never listens: upgraded sockets are handed to it, so client
   * certificates are verified against the bundle exactly as on any TLS server.
   */
  private tlsServer(): TlsServer {
    const current = this.options.tlsOptions();
    const settings = { ...current, minVersion: "TLSv1.2" as const, secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION };
    if (!this.tls) {
      this.tls = createTlsServer({ ...settings, requestCert: true, rejectUnauthorized: false });
      this.tls.on("tlsClientError", (_error, socket) => socket.destroy());
      this.tls.on("secureConnection", (socket: TLSSocket) => {
        const key = `${socket.remoteAddress}|${socket.remotePort}`;
        const onSecure = this.handshaking.get(key);
        this.handshaking.delete(key);
        if (onSecure) onSecure(socket);
        else socket.destroy();
      });
    } else if (this.tlsApplied !== current) this.tls.setSecureContext(settings);
    this.tlsApplied = current;
    return this.tls;
  }

  private upgrade(raw: Socket, address: string, timer: NodeJS.Timeout): void {
    raw.removeAllListeners("data");
    const key = `${raw.remoteAddress}|${raw.remotePort}`;
    this.handshaking.set(key, (tls) => onSecure(tls));
    raw.once("close", () => this.handshaking.delete(key));
    this.tlsServer().emit("connection", raw);
    const onSecure = (tls: TLSSocket) => {
      tls.on("error", () => tls.destroy());
      let caller: AuthenticatedCaller;
      try {
        caller = this.options.verifyPeer(tls);
        // A locked identity is refused at login, not only at its first statement.
        this.options.deps.locks.assertFresh();
        this.options.deps.locks.assertNotLocked({ spiffeId: caller.spiffeId, agent: caller.agent, serialHex: caller.serialHex });
      } catch (error) {
        clearTimeout(timer);
        this.options.deps.journal.record({
          type: "db.connect",
          code: "UNAUTHENTICATED",
          actor: { kind: "anonymous", address },
          outcome: { status: "error", error: "UNAUTHENTICATED", message: (error as Error).message },
        });
        refuse(tls, "28000", `certificate login failed: ${(error as Error).message}`);
        return;
      }
      this.startupPhase(tls, caller, address, timer);
    };
  }
}

function refuse(socket: Socket, code: string, message: string): void {
  if (socket.destroyed) return;
  socket.end(errorResponse({ severity: "FATAL", code, message }));
  setTimeout(() => socket.destroy(), 1000).unref();
}
