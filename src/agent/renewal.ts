import { createPrivateKey } from "node:crypto";
import { MandateClient } from "../client/http-client.js";
import { MandateError, isMandateError } from "../errors/index.js";
import { SERVER_PATH, inspectCertificate, pemDecodeAll } from "../identity/index.js";
import { csrDigest, signRenewalProof } from "../identity/renewal-proof.js";
import { type AgentCredentials, type AgentState, type SvidResponse, writeCredentials } from "./credential-dir.js";
import { generateKeyAndCsr } from "./csr.js";

export const PROOF_RENEWAL_PATH = "/v1/svid/x509/proof";

/**
 * Renews an agent's X509-SVID. By default with a renewal proof (a JWS made with the
 * current SVID's key) over one TLS connection kept alive across renewals, which needs no
 * client certificate and so no new handshake per certificate; over mTLS with the current
 * SVID when the proof path is unavailable: a control plane that predates it, credentials
 * that do not say their generation yet, a key that cannot make ES256 proofs, or an agent
 * clock the server finds outside the proof's window (mTLS does not depend on it).
 */
export class SvidRenewer {
  private client: { bundlePem: string; authServer: string; client: MandateClient } | undefined;
  private proofUnsupported = false;

  constructor(
    private readonly log: (message: string) => void = () => undefined,
    /** The agent's clock (tests move it). */
    private readonly now: () => number = Date.now,
  ) {}

  async renew(outDir: string, current: AgentCredentials): Promise<AgentState> {
    const { keyPem, csrPem, csrDer } = await generateKeyAndCsr();
    const response = (await this.renewWithProof(current, csrPem, csrDer)) ?? (await renewOverMtls(current, csrPem));
    return writeCredentials(outDir, response, keyPem, current.state.authServer, current.state.caPin);
  }

  private async renewWithProof(current: AgentCredentials, csrPem: string, csrDer: Buffer): Promise<SvidResponse | undefined> {
    const generation = current.state.generation;
    if (this.proofUnsupported || generation === undefined) return undefined;
    const leafDer = pemDecodeAll(current.svidPem)[0];
    const key = createPrivateKey(current.keyPem);
    if (!leafDer || key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") return undefined;
    const proof = signRenewalProof(key, leafDer, {
      aud: `spiffe://${current.state.trustDomain}${SERVER_PATH}`,
      sub: current.state.spiffeId,
      iat: Math.floor(this.now() / 1000),
      instance: current.state.instanceId,
      generation,
      serial: inspectCertificate(leafDer).serialHex.toLowerCase(),
      csr: csrDigest(csrDer),
    });
    try {
      return await this.connection(current).request<SvidResponse>("POST", PROOF_RENEWAL_PATH, { csr: csrPem, proof });
    } catch (error) {
      if (isMandateError(error, "NOT_FOUND")) {
        this.proofUnsupported = true;
        this.log("the control plane does not accept renewal proofs; renewing over mTLS");
        return undefined;
      }
      if (isMandateError(error, "PROOF_INVALID") && (error as MandateError).details?.reason === "clock") {
        this.log(`${(error as Error).message}; renewing over mTLS this time`);
        return undefined;
      }
      throw error;
    }
  }

  /** One kept-alive connection, verified against the current bundle; replaced when the bundle or server changes. */
  private connection(current: AgentCredentials): MandateClient {
    const { bundlePem } = current;
    const authServer = current.state.authServer;
    if (this.client?.bundlePem !== bundlePem || this.client.authServer !== authServer) {
      this.client?.client.close();
      this.client = { bundlePem, authServer, client: new MandateClient(authServer, { caPem: bundlePem }) };
    }
    return this.client.client;
  }

  close(): void {
    this.client?.client.close();
    this.client = undefined;
  }
}

async function renewOverMtls(current: AgentCredentials, csrPem: string): Promise<SvidResponse> {
  const client = new MandateClient(current.state.authServer, { caPem: current.bundlePem, certPem: current.svidPem, keyPem: current.keyPem });
  try {
    return await client.request<SvidResponse>("POST", "/v1/svid/x509", { csr: csrPem });
  } finally {
    client.close();
  }
}
