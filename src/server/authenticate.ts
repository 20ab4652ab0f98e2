import type { TLSSocket } from "node:tls";
import type { FastifyRequest } from "fastify";
import type { AuditLog } from "../audit/index.js";
import { MandateError } from "../errors/index.js";
import { ADMIN_PATH, type Caller, type LockRegistry, SERVER_PATH, type TrustDomainAuthority, agentNameOf, userNameOf, validateX509Svid } from "../identity/index.js";

interface VerifiedPeer {
  sequence: number;
  caller: Caller;
}

/**
 * Authenticates callers by their X509-SVID. The TLS layer has already checked the
 * chain against the bundle; here the SPIFFE rules are enforced once per connection
 * (result cached on the socket), while expiry and locks are checked on every request,
 * because a keep-alive connection can outlive both.
 */
export class CallerAuthenticator {
  private readonly verified = new WeakMap<TLSSocket, VerifiedPeer>();

  constructor(
    private readonly authority: TrustDomainAuthority,
    private readonly locks: LockRegistry,
    private readonly audit: AuditLog,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Every refusal is evidence (a stolen or revoked credential being tried), so it is
   * recorded under the event type of what the caller attempted.
   */
  async authenticate(request: FastifyRequest, attempted = "api.authenticate", kind?: Caller["kind"]): Promise<Caller> {
    try {
      const caller = this.authenticateUnaudited(request);
      if (kind && caller.kind !== kind) throw new MandateError("PERMISSION_DENIED", `${caller.spiffeId} is not an ${kind} identity`);
      return caller;
    } catch (error) {
      const code = error instanceof MandateError ? error.code : "INTERNAL";
      const peer = this.peerSpiffeIdForAudit(request);
      await this.audit
        .append({
          type: attempted,
          code,
          actor: { kind: "anonymous", address: request.ip, ...(peer ? { spiffeId: peer } : {}) },
          target: { route: request.routeOptions.url ?? request.url },
          outcome: { status: "error", error: code, message: (error as Error).message },
        })
        .catch(() => undefined);
      throw error;
    }
  }

  private peerSpiffeIdForAudit(request: FastifyRequest): string | undefined {
    const socket = request.raw.socket as TLSSocket;
    return this.verified.get(socket)?.caller.spiffeId;
  }

  private authenticateUnaudited(request: FastifyRequest): Caller {
    const socket = request.raw.socket as TLSSocket;
    let peer = this.verified.get(socket);
    if (!peer || peer.sequence !== this.authority.bundleSequence) {
      peer = { sequence: this.authority.bundleSequence, caller: this.verifySocket(socket) };
      this.verified.set(socket, peer);
    }
    const { caller } = peer;
    if (caller.notAfter.getTime() <= this.now()) {
      throw new MandateError("UNAUTHENTICATED", `the client certificate expired at ${caller.notAfter.toISOString()}; renew it`);
    }
    this.locks.assertFresh();
    this.locks.assertNotLocked({ spiffeId: caller.spiffeId, agent: caller.agent, serialHex: caller.serialHex });
    return caller;
  }

  requireAdmin(request: FastifyRequest): Promise<Caller> {
    return this.authenticate(request, "api.admin", "admin");
  }

  private verifySocket(socket: TLSSocket): Caller {
    return callerFromTlsSocket(socket, this.authority, this.now());
  }
}


/**
 * The SPIFFE rules for a TLS peer whose chain the TLS layer has checked against the
 * bundle: one X509-SVID of this trust domain. Shared by the HTTPS listener and the
 * database proxy's own TLS listener.
 */
export function callerFromTlsSocket(socket: TLSSocket, authority: TrustDomainAuthority, now: number): Caller {
  if (typeof socket.getPeerX509Certificate !== "function") throw new MandateError("UNAUTHENTICATED", "this endpoint requires TLS with a client certificate");
  // The X509Certificate form is far cheaper than getPeerCertificate(true)'s object tree.
  const leaf = socket.getPeerX509Certificate();
  if (!leaf) throw new MandateError("UNAUTHENTICATED", "this endpoint requires an X509-SVID client certificate (mTLS)");
  if (!socket.authorized) {
    throw new MandateError("INVALID_CERTIFICATE", `client certificate rejected: ${String(socket.authorizationError ?? "not issued by this trust domain")}`);
  }
  const chain: Buffer[] = [leaf.raw];
  let current = leaf.issuerCertificate;
  while (current && chain.length < 6) {
    chain.push(current.raw);
    if (current.checkIssued(current)) break;
    current = current.issuerCertificate;
  }
  const trustDomain = authority.trustDomain;
  const result = validateX509Svid(chain, (td: string) => (td === trustDomain ? authority.x509Authorities() : undefined), new Date(now));
  const id = result.spiffeId;
  const agent = agentNameOf(id);
  const user = userNameOf(id);
  const kind: Caller["kind"] = id.path === ADMIN_PATH ? "admin" : id.path === SERVER_PATH ? "server" : agent ? "agent" : user ? "user" : "workload";
  return { kind, spiffeId: id.uri, agent, ...(user ? { user } : {}), serialHex: result.serialHex.toLowerCase(), notAfter: result.notAfter };
}
