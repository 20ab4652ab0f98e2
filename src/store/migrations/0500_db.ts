import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/**
 * The database proxy's registry: one row per registered database. The definition names
 * where each upstream password comes from (an environment variable or a file of the
 * proxy's), never the password.
 */
export default function dbMigration(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable("db_databases")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("definition", "text", (c) => c.notNull())
        .addColumn("created_at", "bigint", (c) => c.notNull())
        .addColumn("created_by", "text", (c) => c.notNull())
        .execute();
    },
  };
}
