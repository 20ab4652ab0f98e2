import { sql } from "kysely";
import type { StoreTx } from "./store.js";

/**
 * Increments a revision counter in `meta` inside the caller's transaction. Registries that
 * hold a view in memory poll the counter and reload when it moves, so a change written by
 * any control plane reaches all of them within one poll interval.
 */
export async function bumpRevision(tx: StoreTx, key: string): Promise<void> {
  const updated = await tx
    .updateTable("meta")
    .set({ value: sql<string>`cast(cast(value as bigint) + 1 as text)` })
    .where("key", "=", key)
    .executeTakeFirst();
  if (Number(updated.numUpdatedRows) === 0) await tx.insertInto("meta").values({ key, value: "1" }).execute();
}
