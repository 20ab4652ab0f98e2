import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { type Socket, connect, createServer } from "node:net";
import { isAbsolute } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { MandateError, isMandateError } from "../../errors/index.js";
import { type PeerCredentials, peerCredAddon, readPeerCredentials } from "../attestation/peer-credentials.js";
import { WORKLOAD_API_METADATA_KEY, loadWorkloadApi } from "./proto.js";
import { toProtoStruct } from "./struct.js";

export interface WorkloadX509Svid {
  spiffeId: string;
  /** Leaf first, then any intermediates, each DER. */
  certChainDer: Buffer[];
  /** Unencrypted PKCS#8 DER of the leaf's key. */
  keyPkcs8Der: Buffer;
  /** CA certificates of the SVID's own trust domain, each DER. */
  bundleDer: Buffer[];
  hint?: string;
  /** The registration's selectors: a caller gets this identity only if it matches all of them. */
  selectors?: readonly string[];
}

export interface WorkloadIdentitySnapshot {
  /** The local trust domain name, e.g. "example.org". */
  trustDomain: string;
  /** The local trust domain's X.509 CA certificates, each DER. */
  bundleDer: Buffer[];
  /** The identities served; the default one first. */
  svids: WorkloadX509Svid[];
  /** Federated trust domain (name or spiffe://name) -> its CA certificates, each DER. */
  federatedBundles: Map<string, Buffer[]>;
  /** Trust domain (name or spiffe://name) -> JWKS document bytes; should include the local domain. */
  jwtBundles: Map<string, Buffer>;
}

export interface WorkloadIdentitySource {
  /** undefined while the daemon has no identity yet (still joining or loading). */
  current(): WorkloadIdentitySnapshot | undefined;
  /** Called after any change to what current() returns; returns the unsubscribe function. */
  onChange(listener: () => void): () => void;
  mintJwtSvid(spiffeId: string, audience: string[]): Promise<string>;
  /** Rejects (preferably with a MandateError) when the token is not valid for the audience. */
  validateJwtSvid(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }>;
}

export type WorkloadApiCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

/** The process at the other end of a connection, as the kernel recorded it at connect(). */
export interface WorkloadCaller extends PeerCredentials {
  connectionId: number;
  /** When the connection was accepted (ms since the epoch); the process must be older. */
  connectedAt: number;
}

export interface WorkloadAttestation {
  /** SPIFFE IDs, among those offered, that the caller may have. */
  allowed: string[];
  /** Why the others were refused (for the denial record). */
  reasons: string[];
  /** What was learned about the process (pid, uid, path…), for the denial record. */
  facts?: Record<string, unknown>;
}

/** Decides per call which identities a caller gets. Throwing refuses the caller (fail closed). */
export interface WorkloadAttestor {
  attest(caller: WorkloadCaller, svids: readonly WorkloadX509Svid[]): Promise<WorkloadAttestation>;
}

/** A refused caller, handed to `onDenied` so it can be recorded. */
export interface WorkloadDenial {
  rpc: string;
  at: number;
  caller: { pid: number; uid: number; gid: number };
  facts: Record<string, unknown>;
  reasons: string[];
}

export interface WorkloadApiServerOptions {
  /** Absolute path of the unix socket. */
  socketPath: string;
  source: WorkloadIdentitySource;
  /** Workload attestation: every RPC is answered only with the identities this allows. */
  attestor: WorkloadAttestor;
  /** Called for every refused caller (never awaited: a slow recorder must not slow the API). */
  onDenied?: (denial: WorkloadDenial) => void;
  /**
   * Socket file mode. Any local user may connect (SPIRE uses 0777): attestation, not the file
   * mode, decides who gets an identity. Pass 0600 to also keep other users off the socket.
   */
  socketMode?: number;
  /** Open connections beyond this are refused at accept (default 8192). */
  maxConnections?: number;
  /** How long close() lets in-flight calls finish before cutting connections. */
  shutdownGraceMs?: number;
  /** Overrides where the contract is read from. */
  protoPath?: string;
}

export interface WorkloadApiServer {
  readonly socketPath: string;
  /** "unix:///abs/path", the value for SPIFFE_ENDPOINT_SOCKET. */
  readonly endpoint: string;
  /** Number of open streaming calls (FetchX509SVID, FetchX509Bundles, FetchJWTBundles). */
  activeStreams(): number;
  /** Number of open client connections on the socket. */
  activeConnections(): number;
  /** Ends open streams with UNAVAILABLE (clients reconnect), then stops the server and removes the socket. */
  close(): Promise<void>;
}

type Status = { code: grpc.status; details: string };

/** What a stream's caller was last attested against, and what it was allowed. */
interface StreamAttestation {
  registrations: string | undefined;
  allowed: Set<string>;
}

function registrationKey(svids: readonly WorkloadX509Svid[]): string {
  return svids.map((svid) => `${svid.spiffeId}|${(svid.selectors ?? []).join(",")}`).join("\n");
}

function status(code: grpc.status, details: string): Status & Error {
  return Object.assign(new Error(details), { code, details });
}

function trustDomainId(key: string): string {
  return key.startsWith("spiffe://") ? key : `spiffe://${key}`;
}

function x509SvidResponse(snapshot: WorkloadIdentitySnapshot) {
  const federated: Record<string, Buffer> = {};
  for (const [td, certs] of snapshot.federatedBundles) federated[trustDomainId(td)] = Buffer.concat(certs);
  return {
    svids: snapshot.svids.map((svid) => ({
      spiffe_id: svid.spiffeId,
      x509_svid: Buffer.concat(svid.certChainDer),
      x509_svid_key: svid.keyPkcs8Der,
      bundle: Buffer.concat(svid.bundleDer),
      hint: svid.hint ?? "",
    })),
    crl: [],
    federated_bundles: federated,
  };
}

function x509BundlesResponse(snapshot: WorkloadIdentitySnapshot) {
  const bundles: Record<string, Buffer> = {};
  for (const [td, certs] of snapshot.federatedBundles) bundles[trustDomainId(td)] = Buffer.concat(certs);
  // Set last so a federated entry can never shadow the local domain's own CAs.
  bundles[trustDomainId(snapshot.trustDomain)] = Buffer.concat(snapshot.bundleDer);
  return { crl: [], bundles };
}

function jwtBundlesResponse(snapshot: WorkloadIdentitySnapshot) {
  const bundles: Record<string, Buffer> = {};
  for (const [td, jwks] of snapshot.jwtBundles) bundles[trustDomainId(td)] = jwks;
  return { bundles };
}

/** Maps failures from the identity source onto gRPC codes without leaking internals. */
function toGrpcError(error: unknown, fallback: grpc.status, context: string): Status & Error {
  if (isMandateError(error)) {
    switch (error.code) {
      case "PERMISSION_DENIED":
      case "LOCKED":
        return status(grpc.status.PERMISSION_DENIED, `${context}: ${error.message}`);
      case "CA_UNAVAILABLE":
      case "STORE_UNAVAILABLE":
      case "CONNECTION_FAILED":
        return status(grpc.status.UNAVAILABLE, `${context}: ${error.message}`);
      case "INTERNAL":
        return status(grpc.status.INTERNAL, context);
      default:
        return status(fallback, `${context}: ${error.message}`);
    }
  }
  return status(fallback === grpc.status.INVALID_ARGUMENT ? fallback : grpc.status.INTERNAL, context);
}

async function removeStaleSocket(socketPath: string): Promise<void> {
  let stat;
  try {
    stat = lstatSync(socketPath);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
    throw new MandateError("CONFIG_INVALID", `cannot inspect ${socketPath}`, { cause: error });
  }
  // Never delete something that is not a socket: a wrong --socket flag must not destroy a file.
  if (!stat.isSocket()) throw new MandateError("CONFIG_INVALID", `${socketPath} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect(socketPath);
    probe.once("connect", () => {
      probe.destroy();
      resolve(true);
    });
    probe.once("error", () => resolve(false));
  });
  if (live) throw new MandateError("ALREADY_EXISTS", `another process is already serving ${socketPath}`);
  unlinkSync(socketPath);
}

export async function startWorkloadApiServer(options: WorkloadApiServerOptions): Promise<WorkloadApiServer> {
  const { socketPath, source, attestor } = options;
  if (!isAbsolute(socketPath)) throw new MandateError("CONFIG_INVALID", `the Workload API socket path must be absolute: ${socketPath}`);
  const { service } = loadWorkloadApi(options.protoPath);
  await removeStaleSocket(socketPath);

  // Fail before listening if callers could not be attested at all.
  peerCredAddon();
  const streams = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  const callers = new Map<string, WorkloadCaller>();
  const sockets = new Set<Socket>();
  let closing = false;

  function deny(rpc: string, caller: WorkloadCaller, reasons: string[], facts: Record<string, unknown> = {}): void {
    try {
      options.onDenied?.({ rpc, at: Date.now(), caller: { pid: caller.pid, uid: caller.uid, gid: caller.gid }, facts, reasons });
    } catch {
      // Recording is best effort here; the caller is refused either way.
    }
  }

  /**
   * Shared gate for every RPC: the spec's header, readiness, then attestation of the calling
   * process. What comes back holds only the identities this caller may have.
   */
  async function admit(call: WorkloadApiCall, rpc: string, memo?: StreamAttestation): Promise<WorkloadIdentitySnapshot> {
    const header = call.metadata.get(WORKLOAD_API_METADATA_KEY);
    if (header.length !== 1 || header[0] !== "true") {
      throw status(grpc.status.INVALID_ARGUMENT, `security header missing from request: ${WORKLOAD_API_METADATA_KEY}: true is required`);
    }
    if (closing) throw status(grpc.status.UNAVAILABLE, "the Workload API is shutting down");
    const snapshot = source.current();
    if (snapshot === undefined) throw status(grpc.status.UNAVAILABLE, "the agent has no identity yet; retry shortly");
    const caller = callers.get(call.getPeer());
    // Every accepted connection was registered with its credentials; anything else is refused.
    if (!caller) throw status(grpc.status.PERMISSION_DENIED, "the caller's process could not be identified");
    const registrations = registrationKey(snapshot.svids);
    if (memo?.registrations === registrations) {
      // Same registrations as when this stream's process was attested: only the SVIDs changed.
      const svids = snapshot.svids.filter((svid) => memo.allowed.has(svid.spiffeId));
      if (svids.length > 0) return { ...snapshot, svids };
    }
    let attestation: WorkloadAttestation;
    try {
      attestation = await attestor.attest(caller, snapshot.svids);
    } catch (error) {
      // Fail closed: an attestation error never grants access, and is recorded like a refusal.
      const reason = isMandateError(error) ? error.message : "workload attestation failed";
      deny(rpc, caller, [reason]);
      throw status(grpc.status.PERMISSION_DENIED, isMandateError(error, "PERMISSION_DENIED") ? `no identity issued to this caller: ${reason}` : "no identity issued to this caller: workload attestation failed");
    }
    const allowed = new Set(attestation.allowed);
    if (memo) {
      memo.registrations = registrations;
      memo.allowed = allowed;
    }
    const svids = snapshot.svids.filter((svid) => allowed.has(svid.spiffeId));
    if (svids.length === 0) {
      deny(rpc, caller, attestation.reasons, attestation.facts);
      throw status(grpc.status.PERMISSION_DENIED, `no identity issued to this caller (pid ${caller.pid}, uid ${caller.uid})`);
    }
    return { ...snapshot, svids };
  }

  /**
   * Runs a server stream that sends a full snapshot now and after every change. The caller is
   * attested when the stream opens and again whenever the registrations (identities or their
   * selectors) change, so a caller whose selectors no longer match loses the identity on the
   * next message; a plain rotation reuses the stream's attestation, as SPIRE's agent does, so
   * rotating 1,000 open streams does not mean 1,000 rounds of /proc reads. While the client is
   * not reading, at most one newer snapshot is remembered (as a flag), so memory per stream
   * stays bounded however often identities rotate.
   */
  function serveStream(
    call: grpc.ServerWritableStream<unknown, unknown>,
    rpc: string,
    render: (snapshot: WorkloadIdentitySnapshot) => object | Status,
  ): void {
    let unsubscribe: (() => void) | undefined;
    const memo: StreamAttestation = { registrations: undefined, allowed: new Set() };
    let waitingForDrain = false;
    let dirty = false;
    let sending = false;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      streams.delete(call);
      unsubscribe?.();
      call.removeListener("drain", onDrain);
    };
    const fail = (error: Status & Error) => {
      finish();
      if (!call.cancelled) call.emit("error", error);
    };
    /** Sends the current view; changes that arrive meanwhile are folded into one more send. */
    const pump = async () => {
      if (sending) {
        dirty = true;
        return;
      }
      sending = true;
      try {
        do {
          dirty = false;
          const view = await admit(call, rpc, memo);
          if (done || call.cancelled) return;
          const message = render(view);
          if ("code" in message && "details" in message) return fail(status(message.code as grpc.status, String(message.details)));
          if (!call.write(message)) {
            waitingForDrain = true;
            return;
          }
        } while (dirty && !done);
      } catch (error) {
        fail(error as Status & Error);
      } finally {
        sending = false;
      }
    };
    const onChange = () => {
      if (waitingForDrain || sending) {
        dirty = true;
        return;
      }
      void pump();
    };
    const onDrain = () => {
      waitingForDrain = false;
      if (dirty) void pump();
    };
    call.once("cancelled", finish);
    call.once("close", finish);
    call.once("finish", finish);
    call.once("error", finish);
    // Subscribed before the first (asynchronous) admission, so a rotation that lands while the
    // caller is being attested is folded into the first send instead of being missed.
    streams.add(call);
    call.on("drain", onDrain);
    unsubscribe = source.onChange(onChange);
    void pump();
  }

  const handlers: grpc.UntypedServiceImplementation = {
    FetchX509SVID(call: grpc.ServerWritableStream<unknown, unknown>) {
      serveStream(call, "FetchX509SVID", (snapshot) =>
        // Losing every identity ends the stream so the workload stops using a revoked one.
        snapshot.svids.length === 0 ? status(grpc.status.PERMISSION_DENIED, "no identity issued to this caller") : x509SvidResponse(snapshot),
      );
    },
    FetchX509Bundles(call: grpc.ServerWritableStream<unknown, unknown>) {
      serveStream(call, "FetchX509Bundles", x509BundlesResponse);
    },
    FetchJWTBundles(call: grpc.ServerWritableStream<unknown, unknown>) {
      serveStream(call, "FetchJWTBundles", jwtBundlesResponse);
    },
    FetchJWTSVID(call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
      (async () => {
        const snapshot = await admit(call, "FetchJWTSVID");
        const request = call.request as { audience?: string[]; spiffe_id?: string };
        const audience = (request.audience ?? []).filter((aud) => aud !== "");
        if (audience.length === 0) throw status(grpc.status.INVALID_ARGUMENT, "audience must be specified");
        let svids = snapshot.svids;
        if (request.spiffe_id) {
          svids = svids.filter((svid) => svid.spiffeId === request.spiffe_id);
          if (svids.length === 0) throw status(grpc.status.PERMISSION_DENIED, `no identity issued for ${request.spiffe_id}`);
        }
        if (svids.length === 0) throw status(grpc.status.PERMISSION_DENIED, "no identity issued to this caller");
        const minted = await Promise.all(
          svids.map(async (svid) => {
            try {
              return { spiffe_id: svid.spiffeId, svid: await source.mintJwtSvid(svid.spiffeId, audience), hint: svid.hint ?? "" };
            } catch (error) {
              throw toGrpcError(error, grpc.status.INTERNAL, `could not mint a JWT-SVID for ${svid.spiffeId}`);
            }
          }),
        );
        return { svids: minted };
      })().then(
        (response) => callback(null, response),
        (error: Status & Error) => callback(error),
      );
    },
    ValidateJWTSVID(call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
      (async () => {
        await admit(call, "ValidateJWTSVID");
        const request = call.request as { audience?: string; svid?: string };
        if (!request.audience) throw status(grpc.status.INVALID_ARGUMENT, "audience must be specified");
        if (!request.svid) throw status(grpc.status.INVALID_ARGUMENT, "svid must be specified");
        let verified;
        try {
          verified = await source.validateJwtSvid(request.svid, request.audience);
        } catch (error) {
          // An invalid token is the caller's input being wrong, as the standard's servers report it.
          throw toGrpcError(error, grpc.status.INVALID_ARGUMENT, "the JWT-SVID is not valid");
        }
        try {
          return { spiffe_id: verified.spiffeId, claims: toProtoStruct(verified.claims) };
        } catch (error) {
          throw toGrpcError(error, grpc.status.INVALID_ARGUMENT, "the JWT-SVID's claims cannot be returned");
        }
      })().then(
        (response) => callback(null, response),
        (error: Status & Error) => callback(error),
      );
    },
  };

  const server = new grpc.Server();
  server.addService(service, handlers);
  // The standard forbids TLS on the Workload API socket: the workload has no identity yet.
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  let nextConnectionId = 0;
  const listener = createServer((socket) => {
    let credentials: PeerCredentials;
    try {
      credentials = readPeerCredentials(socket);
    } catch {
      // No credentials, no service: the connection is dropped before a byte is read.
      socket.destroy();
      return;
    }
    const caller: WorkloadCaller = { ...credentials, connectionId: ++nextConnectionId, connectedAt: Date.now() };
    // grpc-js reports a call's peer as its socket's remoteAddress, which unix sockets lack;
    // naming each accepted socket lets a call be traced back to the process that connected.
    const peer = `workload-connection:${caller.connectionId}`;
    Object.defineProperty(socket, "remoteAddress", { value: peer, configurable: true });
    callers.set(peer, caller);
    sockets.add(socket);
    socket.once("close", () => {
      callers.delete(peer);
      sockets.delete(socket);
      if (caller.pidfd >= 0) peerCredAddon().closeFd(caller.pidfd);
    });
    socket.on("error", () => socket.destroy());
    injector.injectConnection(socket);
  });
  listener.maxConnections = options.maxConnections ?? 8192;
  const endpoint = `unix://${socketPath}`;
  await new Promise<void>((resolve, reject) => {
    listener.once("error", (error) => reject(new MandateError("CONFIG_INVALID", `cannot listen on ${socketPath}: ${error.message}`, { cause: error })));
    listener.listen(socketPath, () => resolve());
  });
  listener.on("error", () => undefined);
  const forceClose = () => {
    injector.destroy();
    server.forceShutdown();
    for (const socket of sockets) socket.destroy();
  };
  try {
    chmodSync(socketPath, options.socketMode ?? 0o666);
  } catch (error) {
    forceClose();
    listener.close();
    throw new MandateError("CONFIG_INVALID", `cannot set the mode of ${socketPath}`, { cause: error });
  }

  let closed: Promise<void> | undefined;
  return {
    socketPath,
    endpoint,
    activeStreams: () => streams.size,
    activeConnections: () => sockets.size,
    close() {
      closed ??= (async () => {
        closing = true;
        for (const call of [...streams]) call.emit("error", status(grpc.status.UNAVAILABLE, "the Workload API is shutting down"));
        streams.clear();
        const listenerClosed = new Promise<void>((resolve) => listener.close(() => resolve()));
        injector.drain(options.shutdownGraceMs ?? 5_000);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            forceClose();
            resolve();
          }, options.shutdownGraceMs ?? 5_000);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        injector.destroy();
        for (const socket of sockets) socket.destroy();
        await listenerClosed;
        try {
          unlinkSync(socketPath);
        } catch {
          // Already gone; nothing left to clean up.
        }
      })();
      return closed;
    },
  };
}
