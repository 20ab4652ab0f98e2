import { createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { MandateError } from "../errors/index.js";
import { parseSpiffeBundle, pemDecodeAll, verifyJwtSvid } from "../identity/index.js";
import type { DenialReport } from "./attestation/index.js";
import type { WorkloadIdentitySnapshot, WorkloadIdentitySource } from "./workload-api/index.js";
import { CREDENTIAL_FILES, type AgentCredentials, readCredentials } from "./credential-dir.js";
import { agentClient } from "./daemon.js";

/**
 * What the daemon serves on the Workload API: its current SVID, key and bundles, read
 * from the credential directory after each renewal (so the files and the socket always
 * agree), with JWT-SVIDs minted by the control plane for this agent's identity.
 */
export class CredentialDirSource implements WorkloadIdentitySource {
  private snapshot: WorkloadIdentitySnapshot | undefined;
  private credentials: AgentCredentials | undefined;
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
    this.snapshot = {
      trustDomain: credentials.state.trustDomain,
      bundleDer,
      svids: [{ spiffeId: credentials.state.spiffeId, certChainDer: pemDecodeAll(credentials.svidPem), keyPkcs8Der: key, bundleDer, selectors: credentials.state.selectors }],
      federatedBundles: new Map(),
      jwtBundles: new Map([[credentials.state.trustDomain, jwks]]),
    };
    for (const listener of this.listeners) listener();
  }

  async mintJwtSvid(_spiffeId: string, audience: string[]): Promise<string> {
    if (!this.credentials) throw new MandateError("UNAUTHENTICATED", "the daemon has not joined yet; no identity to mint a JWT-SVID for");
    const client = agentClient(this.credentials);
    try {
      return (await client.request<{ token: string }>("POST", "/v1/svid/jwt", { audience })).token;
    } finally {
      client.close();
    }
  }

  /** Sends refused-workload reports to the control plane with this agent's identity. */
  async reportDenials(reports: DenialReport[]): Promise<void> {
    if (!this.credentials) throw new MandateError("UNAUTHENTICATED", "the daemon has not joined yet; denials stay in the local log");
    const client = agentClient(this.credentials);
    try {
      await client.request("POST", "/v1/workload/denials", { denials: reports });
    } finally {
      client.close();
    }
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
