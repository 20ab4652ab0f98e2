import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/** Delegation grants: who gave which agent what scope for which task, until when; parents for sub-delegations. */
export default function delegations(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("delegations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("parent_id", "text")
        .addColumn("root_id", "text", (c) => c.notNull())
        .addColumn("depth", "integer", (c) => c.notNull())
        .addColumn("task", "text", (c) => c.notNull())
        .addColumn("delegator_kind", "text", (c) => c.notNull())
        .addColumn("delegator_name", "text", (c) => c.notNull())
        .addColumn("agent", "text", (c) => c.notNull())
        .addColumn("scope", "text", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("revoked_at", "bigint")
        .addColumn("revoked_by", "text")
        .addColumn("revoke_reason", "text")
        .execute();
      await db.schema.createIndex("delegations_agent").on("delegations").columns(["agent", "expires_at"]).execute();
      await db.schema.createIndex("delegations_parent").on("delegations").column("parent_id").execute();
      await db.schema.createIndex("delegations_expires").on("delegations").column("expires_at").execute();
    },
  };
}
