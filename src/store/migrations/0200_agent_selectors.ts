import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/** Workload selectors per agent (JSON array of `unix:…` strings): who on the host may have its identity. */
export default function agentSelectors(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      await db.schema.alterTable("agents").addColumn("selectors", "text", (c) => c.notNull().defaultTo("[]")).execute();
    },
  };
}
