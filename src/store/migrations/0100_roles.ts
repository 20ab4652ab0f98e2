import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/**
 * Roles (each stored as the YAML document that was applied, so `mandate roles show`
 * prints what the author wrote) and the runtime allow-list: deployment-wide resource
 * globs, `allow` entries (none means everything) and the emergency `deny` list. Both are
 * revisioned through the `policy_revision` meta key so every control plane reloads
 * within one poll interval.
 */
export default function rolesMigration(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("roles")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("source", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("updated_at", "bigint", (c) => c.notNull())
        .addColumn("updated_by", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("runtime_allowlist")
        .addColumn("effect", "text", (c) => c.notNull())
        .addColumn("pattern", "text", (c) => c.notNull())
        .addColumn("reason", "text")
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("runtime_allowlist_pk", ["effect", "pattern"])
        .execute();
    },
  };
}
