import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { connect } from "node:net";
import { isAbsolute } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { MandateError, isMandateError } from "../../errors/index.js";
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

export interface WorkloadApiServerOptions {
  /** Absolute path of the unix socket. */
  socketPath: string;
  source: WorkloadIdentitySource;
  /**
   * Hook for workload attestation: returning false answers PERMISSION_DENIED. Without it every
   * local process that can open the socket is served, which is why the socket defaults to 0600.
   */
  authorizeCaller?: (call: WorkloadApiCall) => boolean | Promise<boolean>;
  /**
   * Socket file mode. 0600 keeps the API to the daemon's own user until attestation decides
   * per caller; with attestation in place, a wider mode (SPIRE uses 0777) is appropriate.
   */
  socketMode?: number;
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
  /** Ends open streams with UNAVAILABLE (clients reconnect), then stops the server and removes the socket. */
  close(): Promise<void>;
}

type Status = { code: grpc.status; details: string };

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
  const { socketPath, source, authorizeCaller } = options;
  if (!isAbsolute(socketPath)) throw new MandateError("CONFIG_INVALID", `the Workload API socket path must be absolute: ${socketPath}`);
  const { service } = loadWorkloadApi(options.protoPath);
  await removeStaleSocket(socketPath);

  const streams = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  let closing = false;

  /** Shared gate for every RPC: the spec's header, attestation, then readiness. */
  async function admit(call: WorkloadApiCall): Promise<WorkloadIdentitySnapshot> {
    const header = call.metadata.get(WORKLOAD_API_METADATA_KEY);
    if (header.length !== 1 || header[0] !== "true") {
      throw status(grpc.status.INVALID_ARGUMENT, `security header missing from request: ${WORKLOAD_API_METADATA_KEY}: true is required`);
    }
    if (authorizeCaller) {
      let allowed: boolean;
      try {
        allowed = await authorizeCaller(call);
      } catch {
        // Fail closed: an attestation error must never grant access.
        throw status(grpc.status.INTERNAL, "workload attestation failed");
      }
      if (!allowed) throw status(grpc.status.PERMISSION_DENIED, "no identity issued to this caller");
    }
    if (closing) throw status(grpc.status.UNAVAILABLE, "the Workload API is shutting down");
    const snapshot = source.current();
    if (snapshot === undefined) throw status(grpc.status.UNAVAILABLE, "the agent has no identity yet; retry shortly");
    return snapshot;
  }

  /**
   * Runs a server stream that sends a full snapshot now and after every change. While the
   * client is not reading, at most one newer snapshot is remembered (as a flag), so memory per
   * stream stays bounded however often identities rotate.
   */
  function serveStream(
    call: grpc.ServerWritableStream<unknown, unknown>,
    render: (snapshot: WorkloadIdentitySnapshot) => object | Status,
  ): void {
    admit(call).then(
      (first) => {
        if (call.cancelled) return;
        let unsubscribe: (() => void) | undefined;
        let waitingForDrain = false;
        let dirty = false;
        let done = false;
        const finish = () => {
          if (done) return;
          done = true;
          streams.delete(call);
          unsubscribe?.();
          call.removeListener("drain", onDrain);
        };
        const send = (snapshot: WorkloadIdentitySnapshot | undefined) => {
          if (done || snapshot === undefined) return;
          const message = render(snapshot);
          if ("code" in message && "details" in message) {
            finish();
            call.emit("error", status(message.code as grpc.status, String(message.details)));
            return;
          }
          if (!call.write(message)) waitingForDrain = true;
        };
        const onChange = () => {
          if (waitingForDrain) {
            dirty = true;
            return;
          }
          send(source.current());
        };
        const onDrain = () => {
          waitingForDrain = false;
          if (dirty) {
            dirty = false;
            send(source.current());
          }
        };
        streams.add(call);
        call.on("drain", onDrain);
        call.once("cancelled", finish);
        call.once("close", finish);
        call.once("finish", finish);
        call.once("error", finish);
        unsubscribe = source.onChange(onChange);
        send(first);
      },
      (error: Status & Error) => {
        if (!call.cancelled) call.emit("error", error);
      },
    );
  }

  const handlers: grpc.UntypedServiceImplementation = {
    FetchX509SVID(call: grpc.ServerWritableStream<unknown, unknown>) {
      serveStream(call, (snapshot) =>
        // Losing every identity ends the stream so the workload stops using a revoked one.
        snapshot.svids.length === 0 ? status(grpc.status.PERMISSION_DENIED, "no identity issued to this caller") : x509SvidResponse(snapshot),
      );
    },
    FetchX509Bundles(call: grpc.ServerWritableStream<unknown, unknown>) {
      serveStream(call, x509BundlesResponse);
    },
    FetchJWTBundles(call: grpc.ServerWritableStream<unknown, unknown>) {
      serveStream(call, jwtBundlesResponse);
    },
    FetchJWTSVID(call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) {
      (async () => {
        const snapshot = await admit(call);
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
        await admit(call);
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
  const endpoint = `unix://${socketPath}`;
  await new Promise<void>((resolve, reject) => {
    // The standard forbids TLS on the Workload API socket: the workload has no identity yet.
    server.bindAsync(endpoint, grpc.ServerCredentials.createInsecure(), (error) =>
      error ? reject(new MandateError("CONFIG_INVALID", `cannot listen on ${socketPath}: ${error.message}`, { cause: error })) : resolve(),
    );
  });
  try {
    chmodSync(socketPath, options.socketMode ?? 0o600);
  } catch (error) {
    server.forceShutdown();
    throw new MandateError("CONFIG_INVALID", `cannot set the mode of ${socketPath}`, { cause: error });
  }

  let closed: Promise<void> | undefined;
  return {
    socketPath,
    endpoint,
    activeStreams: () => streams.size,
    close() {
      closed ??= (async () => {
        closing = true;
        for (const call of [...streams]) call.emit("error", status(grpc.status.UNAVAILABLE, "the Workload API is shutting down"));
        streams.clear();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, options.shutdownGraceMs ?? 5_000);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        try {
          unlinkSync(socketPath);
        } catch {
          // Already gone (grpc-js may remove it itself); nothing left to clean up.
        }
      })();
      return closed;
    },
  };
}
