import { type Kysely, type Migration, type MigrationProvider, sql } from "kysely";
import rolesMigration from "./migrations/0100_roles.js";
import llmMigration from "./migrations/0400_llm.js";
import dbMigration from "./migrations/0500_db.js";
import renewalProofs from "./migrations/0600_renewal_proofs.js";
import agentSelectors from "./migrations/0200_agent_selectors.js";
import joinRules from "./migrations/0201_join_rules.js";
import mcpCatalog from "./migrations/0300_mcp_catalog.js";
import usersMigration from "./migrations/0150_users.js";
import oauthMigration from "./migrations/0151_oauth.js";
import oauthSsoMigration from "./migrations/0152_oauth_sso.js";
import oauthRefreshMigration from "./migrations/0153_oauth_refresh.js";
import delegations from "./migrations/0250_delegations.js";
import accessRequests from "./migrations/0251_access_requests.js";

/**
 * Migrations are written once for both dialects: only types both understand
 * (text, bigint, integer) and an autoincrement column declared per dialect.
 */
export type Dialect = "sqlite" | "postgres";

function migrations(dialect: Dialect): Record<string, Migration> {
  const serial = dialect === "postgres" ? "bigserial primary key" : "integer primary key autoincrement";
  return {
    "0001_foundation": {
      async up(db: Kysely<any>) {
        await db.schema
          .createTable("meta")
          .addColumn("key", "text", (c) => c.primaryKey())
          .addColumn("value", "text", (c) => c.notNull())
          .execute();

        await db.schema
          .createTable("ca_authorities")
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("kind", "text", (c) => c.notNull())
          .addColumn("parent_id", "text")
          .addColumn("cert_pem", "text", (c) => c.notNull())
          .addColumn("key_pem", "text", (c) => c.notNull())
          .addColumn("not_before", "bigint", (c) => c.notNull())
          .addColumn("not_after", "bigint", (c) => c.notNull())
          .addColumn("state", "text", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .addColumn("activated_at", "bigint")
          .addColumn("retired_at", "bigint")
          .execute();

        await db.schema
          .createTable("jwt_keys")
          .addColumn("kid", "text", (c) => c.primaryKey())
          .addColumn("public_jwk", "text", (c) => c.notNull())
          .addColumn("key_pem", "text", (c) => c.notNull())
          .addColumn("state", "text", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .addColumn("activated_at", "bigint")
          .addColumn("retired_at", "bigint")
          .execute();

        await db.schema
          .createTable("agents")
          .addColumn("name", "text", (c) => c.primaryKey())
          .addColumn("spiffe_id", "text", (c) => c.notNull().unique())
          .addColumn("roles", "text", (c) => c.notNull())
          .addColumn("labels", "text", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .addColumn("created_by", "text", (c) => c.notNull())
          .execute();

        await db.schema
          .createTable("join_tokens")
          .addColumn("token_hash", "text", (c) => c.primaryKey())
          .addColumn("agent_name", "text", (c) => c.notNull())
          .addColumn("expires_at", "bigint", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .addColumn("created_by", "text", (c) => c.notNull())
          .addColumn("used_at", "bigint")
          .addColumn("used_by_instance", "text")
          .execute();
        await db.schema.createIndex("join_tokens_agent").on("join_tokens").column("agent_name").execute();

        await db.schema
          .createTable("instances")
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("agent_name", "text", (c) => c.notNull())
          .addColumn("spiffe_id", "text", (c) => c.notNull())
          .addColumn("hostname", "text", (c) => c.notNull())
          .addColumn("join_method", "text", (c) => c.notNull())
          .addColumn("generation", "integer", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .addColumn("last_renewed_at", "bigint", (c) => c.notNull())
          .addColumn("svid_serial", "text", (c) => c.notNull())
          .addColumn("svid_expires_at", "bigint", (c) => c.notNull())
          .addColumn("version", "text", (c) => c.notNull())
          .execute();
        await db.schema.createIndex("instances_agent").on("instances").column("agent_name").execute();

        await db.schema
          .createTable("issued_svids")
          .addColumn("serial", "text", (c) => c.primaryKey())
          .addColumn("spiffe_id", "text", (c) => c.notNull())
          .addColumn("agent_name", "text")
          .addColumn("instance_id", "text")
          .addColumn("authority_id", "text", (c) => c.notNull())
          .addColumn("not_after", "bigint", (c) => c.notNull())
          .addColumn("issued_at", "bigint", (c) => c.notNull())
          .execute();
        await db.schema.createIndex("issued_svids_instance").on("issued_svids").column("instance_id").execute();
        await db.schema.createIndex("issued_svids_not_after").on("issued_svids").column("not_after").execute();

        await db.schema
          .createTable("locks")
          .addColumn("id", "text", (c) => c.primaryKey())
          .addColumn("target_kind", "text", (c) => c.notNull())
          .addColumn("target_value", "text", (c) => c.notNull())
          .addColumn("reason", "text", (c) => c.notNull())
          .addColumn("created_by", "text", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .addColumn("expires_at", "bigint")
          .execute();

        await sql`create table audit_events (
          seq ${sql.raw(serial)},
          id text not null unique,
          time bigint not null,
          type text not null,
          code text not null,
          actor_spiffe_id text,
          actor_agent text,
          actor_user text,
          task_id text,
          decision text,
          outcome text not null,
          body text not null
        )`.execute(db);
        await db.schema.createIndex("audit_events_time").on("audit_events").column("time").execute();
        await db.schema.createIndex("audit_events_type_time").on("audit_events").columns(["type", "time"]).execute();
        await db.schema.createIndex("audit_events_agent_time").on("audit_events").columns(["actor_agent", "time"]).execute();
        await db.schema.createIndex("audit_events_task_time").on("audit_events").columns(["task_id", "time"]).execute();
      },
    },
    "0002_audit_chain": {
      async up(db: Kysely<any>) {
        await db.schema.alterTable("audit_events").addColumn("chain_seq", "bigint").execute();
        await db.schema.alterTable("audit_events").addColumn("leaf_hash", "text").execute();
        await db.schema.alterTable("audit_events").addColumn("chain_hash", "text").execute();
        await db.schema.createIndex("audit_events_chain_seq").on("audit_events").column("chain_seq").unique().execute();
        await db.schema.createIndex("audit_events_decision_time").on("audit_events").columns(["decision", "time"]).execute();
        await db.schema.createIndex("audit_events_user_time").on("audit_events").columns(["actor_user", "time"]).execute();
        // One row: the chain's head. Appenders lock it, so several writers keep one chain without forks.
        await db.schema
          .createTable("audit_chain_head")
          .addColumn("id", "integer", (c) => c.primaryKey())
          .addColumn("seq", "bigint", (c) => c.notNull())
          .addColumn("chain_hash", "text", (c) => c.notNull())
          .execute();
        await db.insertInto("audit_chain_head").values({ id: 1, seq: 0, chain_hash: "0".repeat(64) }).execute();
      },
    },
    "0003_audit_correlation": {
      async up(db: Kysely<any>) {
        // `mandate audit trace` starts from a task, a delegation or a session: each needs an index.
        await db.schema.alterTable("audit_events").addColumn("session_id", "text").execute();
        await db.schema.alterTable("audit_events").addColumn("delegation_id", "text").execute();
        await db.schema.createIndex("audit_events_session_time").on("audit_events").columns(["session_id", "time"]).execute();
        await db.schema.createIndex("audit_events_delegation_time").on("audit_events").columns(["delegation_id", "time"]).execute();
      },
    },
    "0005_instance_generations": {
      async up(db: Kysely<any>) {
        // Which generation each certificate carries, and the newest one an instance has presented:
        // together they tell a retried renewal from a copied credential.
        await db.schema.alterTable("issued_svids").addColumn("generation", "integer").execute();
        await db.schema.alterTable("instances").addColumn("last_presented_generation", "integer").execute();
      },
    },
    "0004_audit_checkpoints": {
      async up(db: Kysely<any>) {
        await db.schema
          .createTable("audit_checkpoints")
          .addColumn("tree_size", "bigint", (c) => c.primaryKey())
          .addColumn("root_hash", "text", (c) => c.notNull())
          .addColumn("note", "text", (c) => c.notNull())
          .addColumn("created_at", "bigint", (c) => c.notNull())
          .execute();
      },
    },
  };
}

/**
 * Later migrations live one per file in `migrations/`, named `NNNN_what.ts` within the
 * owning module's range (0100 access, 0200 agent and join, 0300 MCP, 0400 LLM, 0500
 * database, 0600 identity). Add the file and one line here.
 */
const laterMigrations: Record<string, (dialect: Dialect) => Migration> = {
  "0100_roles": rolesMigration,
  "0400_llm": llmMigration,
  "0500_db": dbMigration,
  "0600_renewal_proofs": renewalProofs,
  "0200_agent_selectors": agentSelectors,
  "0201_join_rules": joinRules,
  "0300_mcp_catalog": mcpCatalog,
  "0150_users": usersMigration,
  "0151_oauth": oauthMigration,
  "0152_oauth_sso": oauthSsoMigration,
  "0153_oauth_refresh": oauthRefreshMigration,
  "0250_delegations": delegations,
  "0251_access_requests": accessRequests,
};

export function migrationProvider(dialect: Dialect): MigrationProvider {
  return {
    getMigrations: async () => {
      const all = migrations(dialect);
      for (const [name, build] of Object.entries(laterMigrations)) all[name] = build(dialect);
      return all;
    },
  };
}
