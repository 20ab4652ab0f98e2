import { afterEach, describe, expect, it } from "vitest";
import { availableBackends } from "../../test/helpers/backends.js";
import { prepareQuery } from "./prepared.js";
import { Store } from "./store.js";

const backends = await availableBackends();

describe.each(backends)("prepared queries on $name", (backend) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  it("bind each call's values wherever the SQL puts them, keep constants, and match what the builder runs", async () => {
    const env = await backend.create();
    const store = await Store.open({ dataDir: env.dataDir, storage: env.storage });
    cleanups.push(env.cleanup, () => store.close());
    const insert = prepareQuery(["key", "value"], (v) => store.db.insertInto("meta").values({ value: v.value, key: v.key }));
    // A constant between two bound values, and the bound values in the other order than their names.
    const find = prepareQuery(["suffix", "prefix"], (v) =>
      store.db.selectFrom("meta").select(["key", "value"]).where("key", "like", v.prefix).where("value", "<>", "never").where("value", "like", v.suffix).orderBy("key"),
    );
    for (const [key, value] of [["a1", "x-one"], ["a2", "y-two"], ["b1", "x-three"]]) await insert(store.db, { key: key!, value: value! });
    const prepared = await find(store.db, { prefix: "a%", suffix: "x%" });
    const built = await store.db.selectFrom("meta").select(["key", "value"]).where("key", "like", "a%").where("value", "<>", "never").where("value", "like", "x%").orderBy("key").execute();
    expect(prepared.rows).toEqual(built);
    expect(prepared.rows).toEqual([{ key: "a1", value: "x-one" }]);
    // Inside a transaction too, with other values on the same compiled query.
    await store.transaction(async (tx) => {
      expect((await find(tx, { prefix: "%", suffix: "%three" })).rows).toEqual([{ key: "b1", value: "x-three" }]);
    });
  });
});
