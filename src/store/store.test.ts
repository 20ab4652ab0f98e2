import { chmod, rm } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { availableBackends } from "../../test/helpers/backends.js";
import { isMandateError } from "../errors/index.js";
import { Store } from "./store.js";

const backends = await availableBackends();

describe.each(backends)("store on $name", (backend) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function open() {
    const env = await backend.create();
    const store = await Store.open({ dataDir: env.dataDir, storage: env.storage, fileCheckIntervalMs: 50 });
    cleanups.push(env.cleanup);
    cleanups.push(() => store.close());
    return { store, env };
  }

  it("migrates, and migrating again is a no-op", async () => {
    const { store, env } = await open();
    await store.db.insertInto("meta").values({ key: "k", value: "v" }).execute();
    const again = await Store.open({ dataDir: env.dataDir, storage: env.storage });
    expect(await again.getMeta("k")).toBe("v");
    await again.close();
  });

  it("commits concurrent durable writes in batches, each acknowledged only once committed", async () => {
    const { store } = await open();
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => store.writeDurably(async (tx) => void (await tx.insertInto("meta").values({ key: `k${i}`, value: String(i) }).execute()))),
    );
    const rows = await store.db.selectFrom("meta").select(({ fn }) => fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    expect(Number(rows.n)).toBe(200);
  });

  it("fails every write of a batch that cannot commit, and keeps none of it", async () => {
    const { store } = await open();
    await store.db.insertInto("meta").values({ key: "dup", value: "1" }).execute();
    const results = await Promise.allSettled([
      store.writeDurably(async (tx) => void (await tx.insertInto("meta").values({ key: "fresh", value: "1" }).execute())),
      store.writeDurably(async (tx) => void (await tx.insertInto("meta").values({ key: "dup", value: "2" }).execute())),
    ]);
    expect(results.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(await store.getMeta("fresh")).toBeUndefined();
    expect(await store.getMeta("dup")).toBe("1");
  });

  it("serializes init work across concurrent callers", async () => {
    const { store } = await open();
    const order: string[] = [];
    await Promise.all(
      ["a", "b", "c"].map((name) =>
        store.withInitLock(async () => {
          order.push(`${name}+`);
          await new Promise((r) => setTimeout(r, 10));
          order.push(`${name}-`);
        }),
      ),
    );
    // Both backends serialize (advisory lock / lock file): every entry is followed by its own exit.
    expect(order).toHaveLength(6);
    for (let i = 0; i < order.length; i += 2) expect(order[i]![0]).toBe(order[i + 1]![0]);
  });

  if (backend.name === "sqlite") {
    it("refuses writes with a clear error once the database file is deleted", async () => {
      const { store } = await open();
      await rm(store.location);
      await store.checkHealth();
      const error = await store.writeDurably(async () => undefined).catch((e: unknown) => e);
      expect(isMandateError(error, "STORE_UNAVAILABLE")).toBe(true);
      expect((error as Error).message).toContain("deleted");
    });

    it("refuses writes while the database file is read-only, and resumes when it is writable again", async () => {
      const { store } = await open();
      await chmod(store.location, 0o444);
      await store.checkHealth();
      const error = await store.transaction(async () => undefined).catch((e: unknown) => e);
      expect(isMandateError(error, "STORE_READ_ONLY")).toBe(true);
      await chmod(store.location, 0o644);
      await store.checkHealth();
      await expect(store.transaction(async () => "ok")).resolves.toBe("ok");
    });
  }
});

describe("store options", () => {
  it("rejects unknown storage URLs without echoing passwords", async () => {
    const error = await Store.open({ dataDir: "/tmp/x", storage: "mysql://u:secret@h/db" }).catch((e: unknown) => e);
    expect(isMandateError(error, "CONFIG_INVALID")).toBe(true);
    expect((error as Error).message).not.toContain("secret");
  });

  it("reports an unreachable Postgres clearly", async () => {
    const error = await Store.open({ dataDir: "/tmp/x", storage: "postgres://u:secret@127.0.0.1:1/db" }).catch((e: unknown) => e);
    expect(isMandateError(error, "STORE_UNAVAILABLE")).toBe(true);
    expect((error as Error).message).toContain("***");
    expect((error as Error).message).not.toContain("secret");
  });
});

describe.skipIf(!backends.some((b) => b.name === "postgres"))("several deployments in one PostgreSQL database", () => {
  it("migrate side by side, each in its own schema", async () => {
    const postgres = backends.find((b) => b.name === "postgres")!;
    const envs = await Promise.all(Array.from({ length: 4 }, () => postgres.create()));
    try {
      const stores = await Promise.all(envs.map((env) => Store.open({ dataDir: env.dataDir, storage: env.storage })));
      for (const store of stores) {
        await store.db.insertInto("meta").values({ key: "probe", value: "x" }).execute();
        await store.close();
      }
    } finally {
      for (const env of envs) await env.cleanup();
    }
  });
});
