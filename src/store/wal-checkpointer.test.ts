import { stat } from "node:fs/promises";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { tempDir } from "../../test/helpers/backends.js";
import { Store } from "./store.js";
import { WalCheckpointer } from "./wal-checkpointer.js";

describe("WAL checkpoints off the event loop", () => {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  /** A WAL database whose own connection never checkpoints, as the store's main connection. */
  async function plainWalDatabase() {
    const dataDir = await tempDir();
    const path = join(dataDir, "plain.db");
    const db = new BetterSqlite3(path);
    cleanups.push(() => void db.close());
    db.pragma("journal_mode = WAL");
    db.pragma("wal_autocheckpoint = 0");
    return { dataDir, path, db };
  }

  it("keep the write-ahead log bounded while the main connection never checkpoints itself", async () => {
    const dataDir = await tempDir();
    const store = await Store.open({ dataDir });
    cleanups.push(() => store.close());
    expect(store.prepareSqliteStatement("pragma wal_autocheckpoint")!.get()).toEqual({ wal_autocheckpoint: 0 });
    const value = "x".repeat(3000);
    let largestWal = 0;
    // 1,500 commits of a few pages each leave a WAL of ~16 MB without checkpoints; the log restarts past 4 MB.
    for (let i = 0; i < 1500; i++) {
      await store.writeDurably(async (tx) => {
        await tx.insertInto("meta").values({ key: `k${i}`, value }).execute();
      });
      if (i % 100 === 99) {
        largestWal = Math.max(largestWal, (await stat(join(dataDir, "mandate.db-wal"))).size);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }
    expect((await store.db.selectFrom("meta").select((eb) => eb.fn.countAll().as("n")).where("key", "like", "k%").executeTakeFirstOrThrow()).n).toBe(1500);
    expect(largestWal).toBeGreaterThan(0);
    expect(largestWal).toBeLessThan(8 * 1024 * 1024);
  });

  it("hand checkpoints back to the main connection when the worker cannot run", async () => {
    const { dataDir, path, db } = await plainWalDatabase();
    let resumed = false;
    const checkpointer = new WalCheckpointer(path, {
      driver: join(dataDir, "no-such-driver.js"),
      catchUp: () => undefined,
      resumeInlineCheckpoints: () => {
        resumed = true;
        db.pragma("wal_autocheckpoint = 1000");
      },
    });
    cleanups.push(() => checkpointer.close());
    for (let i = 0; i < 20 && !resumed; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(resumed).toBe(true);
    expect(db.pragma("wal_autocheckpoint", { simple: true })).toBe(1000);
    expect(checkpointer.stats.lastError).toMatch(/no-such-driver|Cannot find module/);
  });

  it("checkpoint a database another connection writes, and report a missing file instead of failing", async () => {
    const { dataDir, path, db } = await plainWalDatabase();
    db.exec("create table t (v text)");
    const checkpointer = new WalCheckpointer(path, { everyCommits: 1, catchUp: () => undefined, resumeInlineCheckpoints: () => undefined });
    cleanups.push(() => checkpointer.close());
    db.prepare("insert into t values (?)").run("a");
    checkpointer.noteCommit();
    for (let i = 0; i < 40 && checkpointer.stats.completed === 0; i++) await new Promise((resolve) => setTimeout(resolve, 25));
    expect(checkpointer.stats.completed).toBeGreaterThan(0);
    // Everything in the WAL is in the database file now: a PASSIVE checkpoint from here has nothing left.
    const [result] = db.pragma("wal_checkpoint(PASSIVE)") as { log: number; checkpointed: number }[];
    expect(result!.checkpointed).toBe(result!.log);

    const missing = new WalCheckpointer(join(dataDir, "gone.db"), { everyCommits: 1, catchUp: () => undefined, resumeInlineCheckpoints: () => undefined });
    cleanups.push(() => missing.close());
    missing.noteCommit();
    for (let i = 0; i < 40 && missing.stats.failed === 0; i++) await new Promise((resolve) => setTimeout(resolve, 25));
    expect(missing.stats.failed).toBeGreaterThan(0);
    expect(missing.stats.lastError).toMatch(/unable to open|does not exist|no such file/i);
  });
});
