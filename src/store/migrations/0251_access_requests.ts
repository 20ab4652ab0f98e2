import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/** Access requests (just-in-time approvals): one row per pending, decided or consumed request. */
export default function accessRequests(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("access_requests")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("requester_kind", "text", (c) => c.notNull())
        .addColumn("requester", "text", (c) => c.notNull())
        .addColumn("delegation_id", "text")
        .addColumn("task", "text")
        .addColumn("action", "text", (c) => c.notNull())
        .addColumn("resource", "text", (c) => c.notNull())
        .addColumn("args_hash", "text")
        .addColumn("rule", "text", (c) => c.notNull())
        .addColumn("match_key", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("expires_at", "bigint", (c) => c.notNull())
        .addColumn("decided_at", "bigint")
        .addColumn("decided_by", "text")
        .addColumn("decision_reason", "text")
        .addColumn("grant_mode", "text")
        .addColumn("valid_until", "bigint")
        .addColumn("used_at", "bigint")
        .addColumn("uses", "integer", (c) => c.notNull().defaultTo(0))
        .execute();
      await db.schema.createIndex("access_requests_match").on("access_requests").columns(["match_key", "status"]).execute();
      await db.schema.createIndex("access_requests_status").on("access_requests").columns(["status", "created_at"]).execute();
    },
  };
}
