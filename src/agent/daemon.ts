import { hostname } from "node:os";
import { MandateClient } from "../client/http-client.js";
import { fetchPinnedRoot } from "../client/pinned-bootstrap.js";
import { MandateError } from "../errors/index.js";
import { parseCaPin, parseJoinToken } from "../join/index.js";
import { certToPem } from "../identity/x509-util.js";
import { type AgentCredentials, type AgentState, type SvidResponse, readCredentials, writeCredentials } from "./credential-dir.js";
import { generateKeyAndCsr } from "./csr.js";
import { SvidRenewer } from "./renewal.js";

/** How a daemon without credentials joins: a Mandate join token, or a token its platform minted. */
export type JoinMethod = "token" | "kubernetes" | "github" | "oidc";

export interface DaemonOptions {
  outDir: string;
  authServer?: string | undefined;
  joinToken?: string | undefined;
  caPin?: string | undefined;
  /** Default "token". The others read a platform token with `readPlatformToken` and need `caPin`. */
  joinMethod?: JoinMethod | undefined;
  /** Where the platform token is read from at join time (a projected token file is refreshed by the kubelet). */
  readPlatformToken?: (() => Promise<string>) | undefined;
  /** Chooses the agent when the platform token matches join rules of several. */
  agent?: string | undefined;
  oneshot?: boolean;
  version?: string;
  log?: (message: string) => void;
  signal?: AbortSignal;
  /** Called after every successful join or renewal (the Workload API re-reads the files). */
  onRenewed?: () => Promise<void> | void;
}

export const AGENT_VERSION = "0.1.0";

/** Joins with the token once; afterwards renews with the current SVID (a proof made with its key, or mTLS). */
export async function obtainSvid(options: DaemonOptions, renewer?: SvidRenewer): Promise<{ state: AgentState; joined: boolean }> {
  const existing = await readCredentials(options.outDir);
  if (existing && existing.notAfter.getTime() > Date.now()) {
    if (options.authServer && new URL(options.authServer).origin !== new URL(existing.state.authServer).origin) {
      throw new MandateError("INVALID_ARGUMENT", `${options.outDir} belongs to ${existing.state.authServer}; use another --out to join ${options.authServer}`);
    }
    return { state: await renewSvid(options.outDir, existing, renewer), joined: false };
  }
  const method = options.joinMethod ?? "token";
  if (method !== "token") {
    if (!options.authServer) throw new MandateError("INVALID_ARGUMENT", "--auth-server is required to join");
    if (!options.caPin) throw new MandateError("INVALID_ARGUMENT", `--ca-pin is required with --join-method ${method}: a platform token carries no pin of Mandate's CA (\`mandate joins add\` prints it)`);
    if (!options.readPlatformToken) throw new MandateError("INVALID_ARGUMENT", `--join-method ${method} needs --token-file or --token-env`);
    const token = (await options.readPlatformToken()).trim();
    const body = { method, token, ...(options.agent ? { agent: options.agent } : {}) };
    return { state: await joinControlPlane(options.outDir, options.authServer, parseCaPin(options.caPin), body, options.version), joined: true };
  }
  if (!options.joinToken) {
    throw new MandateError(
      "UNAUTHENTICATED",
      existing ? `the SVID in ${options.outDir} expired at ${existing.notAfter.toISOString()}; join again with --join-token` : `no credentials in ${options.outDir}; pass --join-token to join`,
    );
  }
  if (!options.authServer) throw new MandateError("INVALID_ARGUMENT", "--auth-server is required to join");
  return { state: await joinWithToken(options.outDir, options.authServer, options.joinToken, options.caPin, options.version), joined: true };
}

export async function joinWithToken(outDir: string, authServer: string, token: string, caPinOption?: string, version = AGENT_VERSION): Promise<AgentState> {
  const tokenPin = parseJoinToken(token).caPin;
  const caPin = caPinOption ? parseCaPin(caPinOption) : tokenPin;
  if (caPinOption && caPin !== tokenPin) {
    throw new MandateError("CA_PIN_MISMATCH", `--ca-pin ${caPin} differs from the pin carried by the join token (${tokenPin}); check which one the admin gave you`);
  }
  return joinControlPlane(outDir, authServer, caPin, { token }, version);
}

/** First contact: verify the server's CA against the pin, then send the join with a key made here. */
async function joinControlPlane(outDir: string, authServer: string, caPin: string, body: Record<string, string>, version = AGENT_VERSION): Promise<AgentState> {
  const root = await fetchPinnedRoot(authServer, caPin);
  const { keyPem, csrPem } = await generateKeyAndCsr();
  const client = new MandateClient(authServer, { caPem: certToPem(root.raw) });
  try {
    const response = await client.request<SvidResponse>("POST", "/v1/join", { ...body, csr: csrPem, hostname: hostname(), version });
    return await writeCredentials(outDir, response, keyPem, authServer, caPin);
  } finally {
    client.close();
  }
}

/** One renewal; pass the daemon's renewer to keep its connection alive across renewals. */
export async function renewSvid(outDir: string, current: AgentCredentials, renewer?: SvidRenewer): Promise<AgentState> {
  if (renewer) return renewer.renew(outDir, current);
  const once = new SvidRenewer();
  try {
    return await once.renew(outDir, current);
  } finally {
    once.close();
  }
}

export function agentClient(credentials: AgentCredentials): MandateClient {
  return new MandateClient(credentials.state.authServer, { caPem: credentials.bundlePem, certPem: credentials.svidPem, keyPem: credentials.keyPem });
}

/**
 * The long-running loop: renew at half the remaining lifetime (with jitter so a
 * fleet does not renew in lockstep), back off on failure, keep the last SVID until it expires.
 */
export async function runDaemon(options: DaemonOptions): Promise<void> {
  const log = options.log ?? (() => undefined);
  // One renewer for the daemon's life: its connection to the control plane stays open between renewals.
  const renewer = new SvidRenewer(log);
  try {
    await renewLoop(options, renewer, log);
  } finally {
    renewer.close();
  }
}

async function renewLoop(options: DaemonOptions, renewer: SvidRenewer, log: (message: string) => void): Promise<void> {
  let { state } = await obtainSvid(options, renewer);
  await options.onRenewed?.();
  log(`identity ${state.spiffeId} (instance ${state.instanceId}) valid until ${state.expiresAt}; files in ${options.outDir}`);
  if (options.oneshot) return;
  let failures = 0;
  while (!options.signal?.aborted) {
    const expiresAt = new Date(state.expiresAt).getTime();
    const remaining = expiresAt - Date.now();
    const delay = failures === 0 ? Math.max(1000, (remaining / 2) * (0.9 + Math.random() * 0.1)) : Math.min(60_000, 1000 * 2 ** failures) * (0.5 + Math.random() / 2);
    await sleep(delay, options.signal);
    if (options.signal?.aborted) break;
    try {
      const current = await readCredentials(options.outDir);
      if (!current) throw new MandateError("UNAUTHENTICATED", `credentials in ${options.outDir} disappeared`);
      // After an outage longer than the SVID's life, a platform token (refreshed by the kubelet or CI) can join anew.
      const rejoin = current.notAfter.getTime() <= Date.now() && (options.joinMethod ?? "token") !== "token";
      state = rejoin ? (await obtainSvid(options, renewer)).state : await renewSvid(options.outDir, current, renewer);
      failures = 0;
      await options.onRenewed?.();
      log(rejoin ? `the SVID had expired; joined again with a fresh ${options.joinMethod} token as ${state.spiffeId}; valid until ${state.expiresAt}` : `renewed ${state.spiffeId}; valid until ${state.expiresAt}`);
    } catch (error) {
      failures++;
      const code = (error as MandateError).code;
      if (code === "LOCKED") {
        log(`renewal refused: ${(error as Error).message}; stopping`);
        throw error;
      }
      const left = Math.round((expiresAt - Date.now()) / 1000);
      log(
        `renewal failed (${(error as Error).message}); ${left > 0 ? `running on borrowed time: current SVID valid for ${left}s more` : "current SVID has EXPIRED: workloads here have no valid identity"}; retrying with backoff`,
      );
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
