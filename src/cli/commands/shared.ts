import { type Command, Option } from "commander";
import type { MandateClient } from "../../client/http-client.js";
import { connectAdmin } from "../admin-client.js";
import type { OutputFormat } from "../output.js";

export interface GlobalOptions {
  dataDir?: string | undefined;
  authServer?: string | undefined;
  identity?: string | undefined;
  format: OutputFormat;
}

/** Options every admin command accepts, so they read naturally after the subcommand too. */
export function adminOptions(command: Command, formats: string[] = ["table", "json"]): Command {
  return command
    .option("--data-dir <dir>", "control-plane data directory holding the local admin identity (env MANDATE_DATA_DIR)")
    .option("--auth-server <url>", "control plane address, https://HOST:PORT (overrides the identity file's)")
    .option("--identity <file>", "admin identity file, for use away from the control-plane host")
    .addOption(new Option("--format <format>", "output format").choices(formats));
}

/** Merges options given before and after the subcommand. */
export function mergedOptions(command: Command): GlobalOptions {
  const all = command.optsWithGlobals() as Record<string, string | undefined>;
  return {
    dataDir: all.dataDir,
    authServer: all.authServer,
    identity: all.identity,
    format: (all.format as OutputFormat | undefined) ?? "table",
  };
}

/** Runs `fn` with an admin client for this command's options, and always closes the client. */
export async function withAdminClient<T>(command: Command, fn: (client: MandateClient, options: GlobalOptions) => Promise<T>): Promise<T> {
  const options = mergedOptions(command);
  const client = await connectAdmin(options);
  try {
    return await fn(client, options);
  } finally {
    client.close();
  }
}
