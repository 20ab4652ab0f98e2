import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { readFile } from "node:fs/promises";
import { MandateClient } from "../client/http-client.js";
import { IdentityFile } from "../client/identity-file.js";
import { MandateError } from "../errors/index.js";

export interface UserConnectionOptions {
  /** an identity file written by `mandate login` */
  identity?: string | undefined;
  /** overrides the file's control-plane address */
  authServer?: string | undefined;
}

export const USER_IDENTITY_FILE = "identity.json";

/** `--identity`, else $MANDATE_IDENTITY, else identity.json in $MANDATE_HOME or ~/.mandate. */
export function userIdentityPath(explicit?: string): string {
  if (explicit) return resolve(explicit);
  if (process.env.MANDATE_IDENTITY) return resolve(process.env.MANDATE_IDENTITY);
  return join(process.env.MANDATE_HOME ? resolve(process.env.MANDATE_HOME) : join(homedir(), ".mandate"), USER_IDENTITY_FILE);
}

/** Reads the identity file without judging its expiry (logout and login still want it). */
export async function readUserIdentity(path: string): Promise<IdentityFile | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new MandateError("UNAUTHENTICATED", `cannot read identity file ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let parsed: ReturnType<typeof IdentityFile.safeParse>;
  try {
    parsed = IdentityFile.safeParse(JSON.parse(text));
  } catch {
    throw new MandateError("UNAUTHENTICATED", `identity file ${path} is not valid JSON; run \`mandate login\` again`);
  }
  if (!parsed.success) throw new MandateError("UNAUTHENTICATED", `${path} is not a Mandate identity file; run \`mandate login\` again`);
  return parsed.data;
}

/** The logged-in user's identity, or a clear instruction to log in. */
export async function loadUserIdentity(options: UserConnectionOptions, now: () => number = Date.now): Promise<{ path: string; identity: IdentityFile }> {
  const path = userIdentityPath(options.identity);
  const identity = await readUserIdentity(path);
  if (!identity) throw new MandateError("UNAUTHENTICATED", `not logged in (no identity at ${path}); run \`mandate login --auth-server https://HOST:PORT\``);
  if (new Date(identity.expiresAt).getTime() <= now()) {
    throw new MandateError("SESSION_EXPIRED", `your login expired at ${identity.expiresAt}; run \`mandate login\` again`, { details: { path, expiresAt: identity.expiresAt } });
  }
  return { path, identity };
}

/** Runs `fn` with a client authenticated by the logged-in user's certificate, and always closes it. */
export async function withUserClient<T>(options: UserConnectionOptions, fn: (client: MandateClient, identity: IdentityFile) => Promise<T>): Promise<T> {
  const { identity } = await loadUserIdentity(options);
  const client = new MandateClient(options.authServer ?? identity.authServer, { caPem: identity.bundlePem, certPem: identity.certPem, keyPem: identity.keyPem });
  try {
    return await fn(client, identity);
  } finally {
    client.close();
  }
}
