import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/**
 * SSO on the OAuth login page: an authorization request remembers the browser that
 * opened it (the hash of a cookie), and an SSO login started from it remembers which
 * authorization request it answers.
 */
export default function oauthSsoMigration(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("oauth_requests").addColumn("browser_binding", "text").execute();
      await db.schema.alterTable("sso_logins").addColumn("oauth_request", "text").execute();
      await db.schema.createIndex("sso_logins_state").on("sso_logins").column("state").execute();
    },
  };
}
