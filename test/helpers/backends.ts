import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freshPostgresDatabase, postgresBaseUrl } from "./postgres.js";

export interface TestBackend {
  name: "sqlite" | "postgres";
  /** A fresh, empty backend: data directory plus (for Postgres) a storage URL. */
  create(): Promise<{ dataDir: string; storage: string | undefined; cleanup: () => Promise<void> }>;
}

export async function tempDir(prefix = "mandate-test-"): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

const sqlite: TestBackend = {
  name: "sqlite",
  async create() {
    const dataDir = await tempDir();
    return { dataDir, storage: undefined, cleanup: () => rm(dataDir, { recursive: true, force: true }) };
  },
};

/** The backends this machine can run: SQLite always, Postgres when reachable (required in CI). */
export async function availableBackends(): Promise<TestBackend[]> {
  const base = await postgresBaseUrl();
  if (!base) return [sqlite];
  const postgres: TestBackend = {
    name: "postgres",
    async create() {
      const dataDir = await tempDir();
      const db = await freshPostgresDatabase(base);
      return {
        dataDir,
        storage: db.url,
        cleanup: async () => {
          await db.drop();
          await rm(dataDir, { recursive: true, force: true });
        },
      };
    },
  };
  return [sqlite, postgres];
}
