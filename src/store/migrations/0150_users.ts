import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/**
 * People: local users (scrypt password hash, TOTP secret and the last TOTP step used, so
 * no code is accepted twice), users provisioned by an OIDC provider (linked by issuer
 * subject), the configured providers, and SSO logins in flight (state, nonce and PKCE
 * verifier, single use, short-lived).
 */
export default function usersMigration(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("users")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("roles", "text", (c) => c.notNull())
        .addColumn("labels", "text", (c) => c.notNull())
        .addColumn("password_hash", "text")
        .addColumn("totp_secret", "text")
        .addColumn("totp_last_step", "bigint")
        .addColumn("disabled", "integer", (c) => c.notNull())
        .addColumn("sso_provider", "text")
        .addColumn("sso_subject", "text")
        .addColumn("email", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addColumn("last_login_at", "bigint")
        .execute();
      await db.schema.createIndex("users_sso_subject").on("users").columns(["sso_provider", "sso_subject"]).unique().execute();
      await db.schema
        .createTable("sso_providers")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("definition", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("sso_logins")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("provider", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("nonce", "text", (c) => c.notNull())
        .addColumn("code_verifier", "text", (c) => c.notNull())
        .addColumn("redirect_uri", "text", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("sso_logins_expires").on("sso_logins").column("expires_at").execute();
    },
  };
}
