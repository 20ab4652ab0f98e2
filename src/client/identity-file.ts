import { readFile } from "node:fs/promises";
import { z } from "zod";
import { MandateError } from "../errors/index.js";
import { writeFileAtomic } from "./files.js";

/**
 * An identity file holds one X509-SVID, its key, the trust bundle and where the
 * control plane is: everything a CLI needs to make authenticated calls. The local
 * admin file is written by `mandate start` into the data directory (tctl-style).
 */
export const IdentityFile = z.strictObject({
  kind: z.literal("mandate-identity"),
  version: z.literal(1),
  spiffeId: z.string(),
  authServer: z.string(),
  certPem: z.string(),
  keyPem: z.string(),
  bundlePem: z.string(),
  caPin: z.string(),
  expiresAt: z.string(),
});
export type IdentityFile = z.infer<typeof IdentityFile>;

export const ADMIN_IDENTITY_FILE = "admin-identity.json";

export async function readIdentityFile(path: string): Promise<IdentityFile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new MandateError("UNAUTHENTICATED", `cannot read identity file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new MandateError("UNAUTHENTICATED", `identity file ${path} is not valid JSON`);
  }
  const parsed = IdentityFile.safeParse(json);
  if (!parsed.success) throw new MandateError("UNAUTHENTICATED", `identity file ${path} is not a Mandate identity file`);
  if (new Date(parsed.data.expiresAt).getTime() <= Date.now()) {
    throw new MandateError("UNAUTHENTICATED", `identity in ${path} expired at ${parsed.data.expiresAt}; start the control plane (it refreshes the local admin identity) or get a new identity file`);
  }
  return parsed.data;
}

export async function writeIdentityFile(path: string, identity: IdentityFile): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(identity, null, 2)}\n`, 0o600);
}
