import { join, resolve } from "node:path";
import { MandateClient } from "../client/http-client.js";
import { ADMIN_IDENTITY_FILE, readIdentityFile } from "../client/identity-file.js";
import { MandateError } from "../errors/index.js";

export interface AdminConnectionOptions {
  dataDir?: string | undefined;
  authServer?: string | undefined;
  identity?: string | undefined;
}

export function defaultDataDir(explicit?: string): string {
  return resolve(explicit ?? process.env.MANDATE_DATA_DIR ?? ".mandate");
}

/**
 * Finds the admin credential the way tctl does: on the control-plane host, the
 * identity `mandate start` keeps in the data directory; elsewhere, an identity
 * file passed with --identity (and optionally --auth-server to override its address).
 */
export async function connectAdmin(options: AdminConnectionOptions): Promise<MandateClient> {
  const path = options.identity ? resolve(options.identity) : join(defaultDataDir(options.dataDir), ADMIN_IDENTITY_FILE);
  const identity = await readIdentityFile(path).catch((error: unknown) => {
    if (!options.identity && (error as MandateError).message.startsWith("cannot read")) {
      throw new MandateError(
        "UNAUTHENTICATED",
        `no admin identity at ${path}. On the control-plane host pass --data-dir (or set MANDATE_DATA_DIR) to the directory \`mandate start\` uses; elsewhere pass --auth-server and --identity FILE`,
      );
    }
    throw error;
  });
  return new MandateClient(options.authServer ?? identity.authServer, { caPem: identity.bundlePem, certPem: identity.certPem, keyPem: identity.keyPem });
}
