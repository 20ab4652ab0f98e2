import { rm } from "node:fs/promises";
import { sql } from "kysely";
import { afterEach, describe, expect, it, vi } from "vitest";
import { tempDir } from "../../test/helpers/backends.js";
import { isMandateError } from "../errors/index.js";

const syncs = vi.hoisted(() => ({ calls: [] as string[], fail: undefined as Error | undefined }));
vi.mock("./wal-sync.js", async (importOriginal) => {
  const original = await importOriginal<typeof import("./wal-sync.js")>();
  class RecordingSync extends original.FileDataSync {
    override async sync(): Promise<void> {
      syncs.calls.push(this.path);
      if (syncs.fail) throw syncs.fail;
      return super.sync();
    }
  }
  return { FileDataSync: RecordingSync };
});
const { Store } = await import("./store.js");

describe("SQLite durable writes: committed without an fsync on the event loop, acknowledged after the WAL's", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
    syncs.calls.length = 0;
    syncs.fail = undefined;
  });

  async function open() {
    const dataDir = await tempDir();
    const store = await Store.open({ dataDir });
    cleanups.push(() => rm(dataDir, { recursive: true, force: true }));
    cleanups.push(() => store.close());
    return store;
  }

  it("syncs the WAL before acknowledging, and leaves the connection at synchronous=FULL for everything else", async () => {
    const store = await open();
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.writeDurably(async (tx) => void (await tx.insertInto("meta").values({ key: `k${i}`, value: "v" }).execute()))));
    expect(syncs.calls.length).toBeGreaterThanOrEqual(1);
    expect(syncs.calls.every((p) => p === `${store.location}-wal`)).toBe(true);
    const level = await sql<{ synchronous: number }>`pragma synchronous`.execute(store.db);
    expect(level.rows[0]!.synchronous).toBe(2);
  });

  it("a failed WAL sync refuses the writes it was to acknowledge, and every write after it", async () => {
    const store = await open();
    syncs.fail = Object.assign(new Error("EIO: i/o error, fdatasync"), { code: "EIO" });
    const error = await store.writeDurably(async (tx) => void (await tx.insertInto("meta").values({ key: "lost", value: "v" }).execute())).catch((e: unknown) => e);
    expect(isMandateError(error, "STORE_UNAVAILABLE")).toBe(true);
    expect((error as Error).message).toContain("could not be synced");
    syncs.fail = undefined;
    const later = await store.writeDurably(async () => undefined).catch((e: unknown) => e);
    expect(isMandateError(later, "STORE_UNAVAILABLE")).toBe(true);
  });
});
