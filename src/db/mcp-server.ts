import type { Readable, Writable } from "node:stream";
import { McpServer } from "@modelcontextprotocol/server";
import { StdioServerTransport } from "@modelcontextprotocol/server/stdio";
import pg from "pg";
import { z } from "zod";
import { readCredentials } from "../agent/index.js";
import { MandateError } from "../errors/index.js";
import { DEFAULT_USER_ALIAS } from "./session.js";

export interface DbMcpServerOptions {
  /** the registered database name */
  database: string;
  credentialDir: string;
  dbUser?: string | undefined;
  proxyHost: string;
  proxyPort: number;
  delegationToken?: string | undefined;
  /** rows returned by `query` at most (the rest are counted, not sent) */
  maxRows?: number;
  input?: Readable;
  output?: Writable;
}

const DEFAULT_MAX_ROWS = 200;

/**
 * `mandate mcp db`: an MCP server (stdio) whose tools reach a registered database through
 * the Mandate database proxy, with this host's agent identity. Every statement therefore
 * meets the same classification, policy and audit as one typed in psql: an agent told to
 * drop the production database gets the proxy's refusal as the tool's error.
 */
export async function runDbMcpServer(options: DbMcpServerOptions): Promise<{ close(): Promise<void> }> {
  const tools = createDbMcpServer({
    database: options.database,
    maxRows: options.maxRows,
    // Read at each connection: the daemon renews the SVID in place.
    connection: async () => {
      const credentials = await readCredentials(options.credentialDir);
      if (!credentials) throw new MandateError("NOT_FOUND", `no agent credentials in ${options.credentialDir}`);
      return {
        key: credentials.state.serial,
        config: async () => ({
          host: options.proxyHost,
          port: options.proxyPort,
          database: options.database,
          user: options.dbUser ?? DEFAULT_USER_ALIAS,
          ...(options.delegationToken ? { options: `-c mandate.delegation=${options.delegationToken}` } : {}),
          // The chain is checked against the trust bundle; the name is the control plane's, not the proxy host's.
          ssl: { cert: credentials.svidPem, key: credentials.keyPem, ca: credentials.bundlePem, checkServerIdentity: () => undefined },
        }),
      };
    },
  });
  await tools.server.connect(new StdioServerTransport(options.input, options.output));
  return tools;
}

export interface DbToolsOptions {
  database: string;
  maxRows?: number | undefined;
  /**
   * How to reach the database through the proxy now; a different `key` (a renewed SVID,
   * another delegation) replaces the open connection.
   */
  connection: () => Promise<{ key: string; config: () => Promise<pg.ClientConfig> }>;
}

/**
 * The MCP server with the three tools, on any transport: stdio for `mandate mcp db`, an
 * in-memory pair for the MCP proxy's built-in `--db` catalog servers.
 */
export function createDbMcpServer(options: DbToolsOptions): { server: McpServer; close(): Promise<void> } {
  const maxRows = options.maxRows ?? DEFAULT_MAX_ROWS;
  let client: pg.Client | undefined;
  let clientKey = "";
  const connection = async (): Promise<pg.Client> => {
    const { key, config } = await options.connection();
    if (client && key === clientKey) return client;
    const previous = client;
    client = undefined;
    await previous?.end().catch(() => undefined);
    const fresh = new pg.Client({ ...(await config()), application_name: "mandate-mcp-db" });
    fresh.on("error", () => {
      if (client === fresh) client = undefined;
    });
    fresh.on("end", () => {
      if (client === fresh) client = undefined;
    });
    await fresh.connect();
    client = fresh;
    clientKey = key;
    return fresh;
  };
  const run = async (text: string, values?: unknown[]) => {
    try {
      return await (await connection()).query({ text, ...(values ? { values } : {}), rowMode: "array" as never });
    } catch (error) {
      const e = error as { code?: string; message: string; detail?: string };
      throw new DbToolError(`${e.message}${e.detail ? ` (${e.detail})` : ""}${e.code ? ` [SQLSTATE ${e.code}]` : ""}`);
    }
  };
  const asText = (value: unknown) => ({ content: [{ type: "text" as const, text: typeof value === "string" ? value : JSON.stringify(value, null, 2) }] });
  const failure = (error: unknown) => ({ isError: true, content: [{ type: "text" as const, text: (error as Error).message }] });

  const server = new McpServer({ name: `mandate-db-${options.database}`, version: "1.0.0" }, { capabilities: { tools: {} } });
  server.registerTool(
    "list_tables",
    { description: `List the tables and views of database ${options.database} that this agent can see.`, inputSchema: z.object({ schema: z.string().optional().describe("only this schema") }) },
    async ({ schema }) => {
      try {
        const result = await run(
          `SELECT table_schema, table_name, table_type FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')${schema ? " AND table_schema = $1" : ""} ORDER BY table_schema, table_name`,
          schema ? [schema] : undefined,
        );
        return asText((result.rows as string[][]).map(([s, t, kind]) => ({ schema: s, table: t, type: kind })));
      } catch (error) {
        return failure(error);
      }
    },
  );
  server.registerTool(
    "describe_table",
    { description: "Columns of a table: name, type, nullability and default.", inputSchema: z.object({ table: z.string().describe("schema.table, or table in the search path") }) },
    async ({ table }) => {
      try {
        const dot = table.indexOf(".");
        const [schema, name] = dot < 0 ? [undefined, table] : [table.slice(0, dot), table.slice(dot + 1)];
        const result = await run(
          `SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns WHERE table_name = $1 AND ${schema ? "table_schema = $2" : "table_schema = ANY (current_schemas(false))"} ORDER BY ordinal_position`,
          schema ? [name, schema] : [name],
        );
        if (result.rows.length === 0) return failure(new Error(`no table ${table} is visible`));
        return asText((result.rows as string[][]).map(([column, type, nullable, defaultValue]) => ({ column, type, nullable: nullable === "YES", default: defaultValue })));
      } catch (error) {
        return failure(error);
      }
    },
  );
  server.registerTool(
    "query",
    { description: `Run SQL on ${options.database} through the Mandate database proxy. What the agent's role does not allow is refused (SQLSTATE 42501) and recorded.`, inputSchema: z.object({ sql: z.string().max(1_000_000) }) },
    async ({ sql }) => {
      try {
        const result = await run(sql);
        const results = Array.isArray(result) ? result : [result];
        return asText(
          results.map((r: pg.QueryResult) => ({
            command: r.command,
            rowCount: r.rowCount,
            columns: r.fields?.map((f) => f.name) ?? [],
            rows: (r.rows ?? []).slice(0, maxRows),
            ...((r.rows?.length ?? 0) > maxRows ? { truncated: `${r.rows.length - maxRows} more rows not shown` } : {}),
          })),
        );
      } catch (error) {
        return failure(error);
      }
    },
  );
  return {
    server,
    async close() {
      await server.close();
      await client?.end().catch(() => undefined);
    },
  };
}

class DbToolError extends Error {}
