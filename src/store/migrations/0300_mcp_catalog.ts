import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/** The MCP catalog: servers, the credentials only the proxy holds, and every tool/prompt/resource definition seen. */
export default function mcpCatalog(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("mcp_servers")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("transport", "text", (c) => c.notNull())
        .addColumn("command", "text")
        .addColumn("url", "text")
        .addColumn("labels", "text", (c) => c.notNull())
        .addColumn("owner", "text", (c) => c.notNull())
        .addColumn("stateless", "integer", (c) => c.notNull())
        .addColumn("drift_mode", "text", (c) => c.notNull())
        .addColumn("secret_action", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("mcp_server_secrets")
        .addColumn("server", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("value", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("mcp_server_secrets_pk", ["server", "kind", "name"])
        .execute();
      await db.schema
        .createTable("mcp_definitions")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("server", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull())
        .addColumn("definition", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("findings", "text", (c) => c.notNull())
        .addColumn("first_seen_at", "bigint", (c) => c.notNull())
        .addColumn("decided_at", "bigint")
        .addColumn("decided_by", "text")
        .addColumn("previous_hash", "text")
        .execute();
      await db.schema.createIndex("mcp_definitions_server_name").on("mcp_definitions").columns(["server", "kind", "name"]).execute();
      await db.schema.createIndex("mcp_definitions_server_hash").on("mcp_definitions").columns(["server", "kind", "name", "hash"]).unique().execute();
    },
  };
}
