import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/**
 * Token-less joins: rules that let a Kubernetes or CI OIDC token join as an agent, and the
 * tokens already used (by jti and by hash) until they expire, so none is accepted twice.
 */
export default function joinRules(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("join_rules")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("method", "text", (c) => c.notNull())
        .addColumn("agent_name", "text", (c) => c.notNull())
        .addColumn("issuer", "text", (c) => c.notNull())
        .addColumn("audience", "text", (c) => c.notNull())
        .addColumn("jwks", "text")
        .addColumn("jwks_url", "text")
        .addColumn("conditions", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("join_rules_issuer").on("join_rules").columns(["method", "issuer"]).execute();
      await db.schema
        .createTable("join_token_uses")
        .addColumn("key", "text", (c) => c.primaryKey())
        .addColumn("rule_id", "text", (c) => c.notNull())
        .addColumn("instance_id", "text", (c) => c.notNull())
        .addColumn("used_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("join_token_uses_expires").on("join_token_uses").column("expires_at").execute();
    },
  };
}
