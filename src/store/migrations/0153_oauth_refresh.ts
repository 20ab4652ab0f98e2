import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/**
 * Refresh tokens for MCP clients, rotated at every use (OAuth 2.1 §4.3.1 for public
 * clients): each belongs to a family started by one sign-in, with the family's absolute
 * end; presenting a used one revokes the whole family and its access tokens.
 */
export default function oauthRefreshMigration(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("oauth_refresh_tokens")
        .addColumn("token_hash", "text", (c) => c.primaryKey())
        .addColumn("family", "text", (c) => c.notNull())
        .addColumn("client_id", "text", (c) => c.notNull())
        .addColumn("user_name", "text", (c) => c.notNull())
        .addColumn("resource", "text", (c) => c.notNull())
        .addColumn("scope", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("family_expires_at", "bigint", (c) => c.notNull())
        .addColumn("used_at", "bigint")
        .execute();
      await db.schema.createIndex("oauth_refresh_tokens_family").on("oauth_refresh_tokens").column("family").execute();
      await db.schema.createIndex("oauth_refresh_tokens_expires").on("oauth_refresh_tokens").column("family_expires_at").execute();
      await db.schema.alterTable("oauth_tokens").addColumn("family", "text").execute();
    },
  };
}
