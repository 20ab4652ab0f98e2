import type { Kysely, Migration } from "kysely";
import type { Dialect } from "../migrations.js";

/**
 * The LLM proxy's tables: providers and models added at run time (config-file entries
 * are not stored), one usage row per model request (what `mandate usage` and budgets
 * add up), and the redacted transcripts `mandate audit trace` shows, pruned by age.
 */
export default function llmMigration(_dialect: Dialect): Migration {
  return {
    async up(db: Kysely<any>) {
      for (const table of ["llm_providers", "llm_models"]) {
        await db.schema
          .createTable(table)
          .addColumn("name", "text", (c) => c.primaryKey())
          .addColumn("definition", "text", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .addColumn("created_by", "text", (c) => c.notNull())
          .execute();
      }
      await db.schema
        .createTable("llm_usage")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("time", "bigint", (c) => c.notNull())
        .addColumn("agent", "text")
        .addColumn("team", "text")
        .addColumn("delegation_id", "text")
        .addColumn("task_id", "text")
        .addColumn("model", "text", (c) => c.notNull())
        .addColumn("provider", "text")
        .addColumn("upstream_model", "text")
        .addColumn("endpoint", "text", (c) => c.notNull())
        .addColumn("status", "text", (c) => c.notNull())
        .addColumn("input_tokens", "bigint", (c) => c.notNull())
        .addColumn("output_tokens", "bigint", (c) => c.notNull())
        .addColumn("cached_tokens", "bigint", (c) => c.notNull())
        .addColumn("reasoning_tokens", "bigint", (c) => c.notNull())
        .addColumn("cost_nano_usd", "bigint", (c) => c.notNull())
        .addColumn("estimated", "integer", (c) => c.notNull())
        .addColumn("latency_ms", "bigint", (c) => c.notNull())
        .addColumn("event_id", "text")
        .execute();
      for (const column of ["agent", "team", "delegation_id", "model"]) {
        await db.schema.createIndex(`llm_usage_${column}_time`).on("llm_usage").columns([column, "time"]).execute();
      }
      await db.schema.createIndex("llm_usage_time").on("llm_usage").column("time").execute();
      await db.schema
        .createTable("llm_transcripts")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("time", "bigint", (c) => c.notNull())
        .addColumn("event_id", "text", (c) => c.notNull())
        .addColumn("agent", "text")
        .addColumn("delegation_id", "text")
        .addColumn("task_id", "text")
        .addColumn("model", "text", (c) => c.notNull())
        .addColumn("prompt", "text", (c) => c.notNull())
        .addColumn("response", "text", (c) => c.notNull())
        .addColumn("truncated", "integer", (c) => c.notNull())
        .addColumn("guardrails", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("llm_transcripts_time").on("llm_transcripts").column("time").execute();
      await db.schema.createIndex("llm_transcripts_event").on("llm_transcripts").column("event_id").execute();
    },
  };
}
