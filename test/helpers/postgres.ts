import { randomBytes } from "node:crypto";
import pg from "pg";

const DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/test";

/** In CI the Postgres-backed suites must run; elsewhere they skip and say why. */
export function postgresRequired(): boolean {
  return process.env.CI === "true" || process.env.MANDATE_REQUIRE_POSTGRES === "1";
}

let reachable: Promise<string | undefined> | undefined;

/** The base URL when a server answers, else undefined (after printing why the suite skips). */
export function postgresBaseUrl(): Promise<string | undefined> {
  reachable ??= (async () => {
    const url = process.env.MANDATE_TEST_POSTGRES ?? DEFAULT_URL;
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
    try {
      await client.connect();
      await client.query("select 1");
      return url;
    } catch (error) {
      if (postgresRequired()) throw new Error(`PostgreSQL is required here but ${url} is unreachable: ${(error as Error).message}`);
      console.warn(`[skip] PostgreSQL suites skipped: ${url} is unreachable (${(error as Error).message}); set MANDATE_TEST_POSTGRES to run them`);
      return undefined;
    } finally {
      await client.end().catch(() => undefined);
    }
  })();
  return reachable;
}

/** A fresh schema per test, selected through the connection's search_path, dropped afterwards. */
export async function freshPostgresDatabase(baseUrl: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const schema = `mandate_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: baseUrl });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  const url = new URL(baseUrl);
  url.searchParams.set("options", `-c search_path=${schema}`);
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: baseUrl });
      await client.connect();
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    },
  };
}
