import { createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { MandateError } from "../errors/index.js";
import { parseSpiffeBundle, pemDecodeAll, verifyJwtSvid } from "../identity/index.js";
import type { DenialReport } from "./attestation/index.js";
import type { WorkloadIdentitySnapshot, WorkloadIdentitySource } from "./workload-api/index.js";
import { CREDENTIAL_FILES, type AgentCredentials, readCredentials } from "./credential-dir.js";
import { agentClient } from "./daemon.js";
import type { MandateClient } from "../client/http-client.js";

const JWT_CACHE_LIMIT = 1024;

/**
 * What the daemon serves on the Workload API: its current SVID, key and bundles, read
 * from the credential directory after each renewal (so the files and the socket always
 * agree), with JWT-SVIDs minted by the control plane for this agent's identity.
 */
export class CredentialDirSource implements WorkloadIdentitySource {
  private snapshot: WorkloadIdentitySnapshot | undefined;
  private credentials: AgentCredentials | undefined;
  /** One kept-alive mTLS client per SVID: minting must not pay a TLS handshake per call. */
  private client: MandateClient | undefined;
  /** JWT-SVIDs by identity and audience, reused until half their life (as SPIRE's agent does). */
  private readonly jwtCache = new Map<string, { token: string; refreshAt: number }>();
  private readonly listeners = new Set<() => void>();

  constructor(private readonly dir: string) {}

  current(): WorkloadIdentitySnapshot | undefined {
    return this.snapshot;
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Re-reads the directory and notifies open streams. */
  async refresh(): Promise<void> {
    const credentials = await readCredentials(this.dir);
    if (!credentials) return;
    const jwks = await readFile(join(this.dir, CREDENTIAL_FILES.jwtBundle));
    const key = createPrivateKey(credentials.keyPem).export({ type: "pkcs8", format: "der" });
    const bundleDer = pemDecodeAll(credentials.bundlePem);
    this.credentials = credentials;
    // Calls still in flight on the old connection finish; it is closed a little later.
    const previous = this.client;
    if (previous) setTimeout(() => previous.close(), 30_000).unref();
    this.client = agentClient(credentials);
    this.jwtCache.clear();
    this.snapshot = {
      trustDomain: credentials.state.trustDomain,
      bundleDer,
      svids: [{ spiffeId: credentials.state.spiffeId, certChainDer: pemDecodeAll(credentials.svidPem), keyPkcs8Der: key, bundleDer, selectors: credentials.state.selectors }],
      federatedBundles: new Map(),
      jwtBundles: new Map([[credentials.state.trustDomain, jwks]]),
    };
    for (const listener of this.listeners) listener();
  }

  async mintJwtSvid(spiffeId: string, audience: string[]): Promise<string> {
    const client = this.client;
    if (!client) throw new MandateError("UNAUTHENTICATED", "the daemon has not joined yet; no identity to mint a JWT-SVID for");
    const key = `${spiffeId}\n${[...new Set(audience)].sort().join("\n")}`;
    const cached = this.jwtCache.get(key);
    if (cached && Date.now() < cached.refreshAt) return cached.token;
    const minted = await client.request<{ token: string; expiresAt: string }>("POST", "/v1/svid/jwt", { audience });
    const issuedAt = Date.now();
    const expiresAt = Date.parse(minted.expiresAt);
    if (client === this.client && Number.isFinite(expiresAt)) {
      if (this.jwtCache.size >= JWT_CACHE_LIMIT) this.jwtCache.delete(this.jwtCache.keys().next().value!);
      this.jwtCache.set(key, { token: minted.token, refreshAt: issuedAt + (expiresAt - issuedAt) / 2 });
    }
    return minted.token;
  }

  /** Closes the kept-alive connection to the control plane. */
  close(): void {
    this.client?.close();
    this.client = undefined;
  }

  /** Sends refused-workload reports to the control plane with this agent's identity. */
  async reportDenials(reports: DenialReport[]): Promise<void> {
    if (!this.client) throw new MandateError("UNAUTHENTICATED", "the daemon has not joined yet; denials stay in the local log");
    await this.client.request("POST", "/v1/workload/denials", { denials: reports });
  }

  async validateJwtSvid(token: string, audience: string): Promise<{ spiffeId: string; claims: Record<string, unknown> }> {
    const snapshot = this.snapshot;
    const verified = await verifyJwtSvid(token, {
      audience,
      jwtBundleFor: (td) => {
        const jwks = snapshot?.jwtBundles.get(td);
        return jwks ? parseSpiffeBundle(JSON.parse(jwks.toString("utf8")), td).jwtBundle : undefined;
      },
    });
    return { spiffeId: verified.spiffeId.uri, claims: verified.claims as Record<string, unknown> };
  }
}
