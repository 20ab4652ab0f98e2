import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/**
 * Mandate as an OAuth 2.1 authorization server for MCP clients: dynamically registered
 * clients (RFC 7591), authorization requests waiting for a login, single-use codes, and
 * access tokens bound to one MCP resource (RFC 8707). Codes and tokens are stored as
 * SHA-256 hashes only.
 */
export default function oauthMigration(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("oauth_clients")
        .addColumn("client_id", "text", (c) => c.primaryKey())
        .addColumn("metadata", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_from", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("oauth_requests")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("client_id", "text", (c) => c.notNull())
        .addColumn("redirect_uri", "text", (c) => c.notNull())
        .addColumn("code_challenge", "text", (c) => c.notNull())
        .addColumn("resource", "text", (c) => c.notNull())
        .addColumn("scope", "text", (c) => c.notNull())
        .addColumn("state", "text")
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("oauth_codes")
        .addColumn("code_hash", "text", (c) => c.primaryKey())
        .addColumn("request", "text", (c) => c.notNull())
        .addColumn("user_name", "text", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("oauth_tokens")
        .addColumn("token_hash", "text", (c) => c.primaryKey())
        .addColumn("client_id", "text", (c) => c.notNull())
        .addColumn("user_name", "text", (c) => c.notNull())
        .addColumn("resource", "text", (c) => c.notNull())
        .addColumn("scope", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .execute();
      for (const table of ["oauth_requests", "oauth_codes", "oauth_tokens"]) {
        await db.schema.createIndex(`${table}_expires`).on(table).column("expires_at").execute();
      }
    },
  };
}
