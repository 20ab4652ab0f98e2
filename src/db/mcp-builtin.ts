import { createHash } from "node:crypto";
import { MandateError } from "../errors/index.js";
import type { UpstreamSpec } from "../mcp/catalog.js";
import type { CallerCredentials } from "../mcp/types.js";
import { InProcessUpstream } from "../mcp/upstream/in-process.js";
import type { Upstream } from "../mcp/upstream/types.js";
import { createDbMcpServer } from "./mcp-server.js";
import type { DbService } from "./service.js";

/**
 * The MCP proxy's built-in database server (`mandate mcp servers add NAME --db DATABASE`):
 * the `mandate mcp db` tools, hosted per conversation, whose statements enter the database
 * proxy in-process as the conversation's own caller with its own delegation token. A
 * caller whose SVID was renewed, or who sends another delegation, gets a new connection.
 */
export async function openBuiltinDbServer(db: DbService | undefined, spec: UpstreamSpec, credentials: () => CallerCredentials): Promise<Upstream> {
  if (!db) throw new MandateError("INTERNAL", "the database proxy is not running in this control plane");
  const database = spec.server.database!;
  const tools = createDbMcpServer({
    database,
    connection: async () => {
      const current = credentials();
      const token = current.delegationToken ? createHash("sha256").update(current.delegationToken).digest("base64url") : "-";
      return {
        key: `${current.caller.spiffeId}|${current.caller.serialHex ?? ""}|${token}`,
        config: async () => {
          const stream = await db.openInProcess(current.caller, { database, dbUser: spec.server.dbUser, delegationToken: current.delegationToken, address: current.address ?? "" });
          return { stream: () => stream as never, database };
        },
      };
    },
  });
  return InProcessUpstream.start(tools);
}
