import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../client/files.js";
import { MandateError } from "../errors/index.js";
import { pemDecodeAll } from "../identity/x509-util.js";

/** The files `mandate daemon` keeps fresh, under the names SPIFFE helpers use. */
export const CREDENTIAL_FILES = {
  svid: "svid.pem",
  key: "svid_key.pem",
  bundle: "bundle.pem",
  jwtBundle: "jwt_bundle.json",
  state: "mandate-agent.json",
} as const;

const AgentState = z.object({
  authServer: z.string(),
  caPin: z.string(),
  spiffeId: z.string(),
  instanceId: z.string(),
  trustDomain: z.string(),
  expiresAt: z.string(),
  serial: z.string(),
  /** The agent's workload selectors as of the last join or renewal. */
  selectors: z.array(z.string()).default([]),
  /** The instance generation the current SVID carries (a renewal proof names it); absent from older files. */
  generation: z.number().int().positive().optional(),
});
export type AgentState = z.infer<typeof AgentState>;

export interface SvidResponse {
  spiffeId: string;
  instanceId: string;
  serial: string;
  generation?: number;
  expiresAt: string;
  svidPem: string;
  trustDomain: string;
  bundleSequence: number;
  bundlePem: string;
  jwtBundle: object;
  selectors?: string[];
}

export interface AgentCredentials {
  state: AgentState;
  svidPem: string;
  keyPem: string;
  bundlePem: string;
  notAfter: Date;
}

/**
 * Writes in an order that keeps the directory usable at every instant: the key
 * and the certificate are each replaced atomically, key first, and a reader that
 * catches the old certificate with the new key just retries (the state file last
 * says which serial is current).
 */
export async function writeCredentials(dir: string, response: SvidResponse, keyPem: string, authServer: string, caPin: string): Promise<AgentState> {
  const state: AgentState = {
    authServer,
    caPin,
    spiffeId: response.spiffeId,
    instanceId: response.instanceId,
    trustDomain: response.trustDomain,
    expiresAt: response.expiresAt,
    serial: response.serial,
    selectors: response.selectors ?? [],
    ...(response.generation === undefined ? {} : { generation: response.generation }),
  };
  await writeFileAtomic(join(dir, CREDENTIAL_FILES.bundle), response.bundlePem, 0o644);
  await writeFileAtomic(join(dir, CREDENTIAL_FILES.jwtBundle), `${JSON.stringify(response.jwtBundle, null, 2)}\n`, 0o644);
  await writeFileAtomic(join(dir, CREDENTIAL_FILES.key), keyPem, 0o600);
  await writeFileAtomic(join(dir, CREDENTIAL_FILES.svid), response.svidPem, 0o644);
  await writeFileAtomic(join(dir, CREDENTIAL_FILES.state), `${JSON.stringify(state, null, 2)}\n`, 0o600);
  return state;
}

/** Reads the credentials back; undefined when the directory has none yet. */
export async function readCredentials(dir: string): Promise<AgentCredentials | undefined> {
  let stateText: string;
  try {
    stateText = await readFile(join(dir, CREDENTIAL_FILES.state), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
  const parsed = AgentState.safeParse(JSON.parse(stateText));
  if (!parsed.success) throw new MandateError("INVALID_ARGUMENT", `${join(dir, CREDENTIAL_FILES.state)} is not a Mandate agent state file`);
  const [svidPem, keyPem, bundlePem] = await Promise.all([
    readFile(join(dir, CREDENTIAL_FILES.svid), "utf8"),
    readFile(join(dir, CREDENTIAL_FILES.key), "utf8"),
    readFile(join(dir, CREDENTIAL_FILES.bundle), "utf8"),
  ]);
  const leaf = pemDecodeAll(svidPem)[0];
  if (!leaf) throw new MandateError("INVALID_CERTIFICATE", `${join(dir, CREDENTIAL_FILES.svid)} holds no certificate`);
  return { state: parsed.data, svidPem, keyPem, bundlePem, notAfter: new Date(new X509Certificate(leaf).validTo) };
}
