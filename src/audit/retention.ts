import { z } from "zod";
import { MandateError } from "../errors/index.js";
import type { Store } from "../store/index.js";
import { readLeafHashes } from "./checkpointer.js";
import { MerkleAccumulator } from "./merkle.js";

const ANCHOR_META = "audit_prune_anchor";

/**
 * What remains of a pruned prefix: the chain link and the Merkle tree's right edge at
 * the last pruned event. The edge reproduces the root a signed checkpoint vouches for,
 * so verification can start after the prefix without trusting this record.
 */
const PruneAnchor = z.object({ seq: z.number().int().positive(), chainHash: z.string(), rightEdge: z.array(z.string()) });
export type PruneAnchor = z.infer<typeof PruneAnchor>;

export async function readPruneAnchor(store: Store): Promise<PruneAnchor | undefined> {
  const text = await store.getMeta(ANCHOR_META);
  if (!text) return undefined;
  const parsed = PruneAnchor.safeParse(JSON.parse(text));
  if (!parsed.success) throw new MandateError("AUDIT_TAMPERED", "the audit log's prune anchor is unreadable");
  return parsed.data;
}

export function accumulatorFromAnchor(anchor: PruneAnchor | undefined): MerkleAccumulator {
  return anchor ? MerkleAccumulator.restore(anchor.seq, anchor.rightEdge.map((h) => Buffer.from(h, "hex"))) : new MerkleAccumulator();
}

/**
 * Deletes events older than `before`, but only up to a signed checkpoint, so the pruned
 * prefix stays anchored: later verification checks that checkpoint's root from the
 * saved right edge, then every event after it as before. Returns how many were pruned.
 */
export async function pruneAuditLog(store: Store, before: Date): Promise<{ pruned: number; throughSeq: number }> {
  const previous = await readPruneAnchor(store);
  const from = previous?.seq ?? 0;
  const checkpoint = await store.db
    .selectFrom("audit_checkpoints")
    .innerJoin("audit_events", "audit_events.chain_seq", "audit_checkpoints.tree_size")
    .select(["audit_checkpoints.tree_size as size", "audit_events.chain_hash as chainHash"])
    .where("audit_events.time", "<", before.getTime())
    .where("audit_checkpoints.tree_size", ">", from)
    .orderBy("audit_checkpoints.tree_size", "desc")
    .limit(1)
    .executeTakeFirst();
  if (!checkpoint) return { pruned: 0, throughSeq: from };
  const through = Number(checkpoint.size);
  const accumulator = accumulatorFromAnchor(previous);
  for (const leaf of await readLeafHashes(store, through, from)) accumulator.append(leaf);
  const anchor: PruneAnchor = { seq: through, chainHash: checkpoint.chainHash!, rightEdge: accumulator.rightEdge().map((h) => h.toString("hex")) };
  await store.transaction(async (tx) => {
    await tx
      .insertInto("meta")
      .values({ key: ANCHOR_META, value: JSON.stringify(anchor) })
      .onConflict((oc) => oc.column("key").doUpdateSet({ value: JSON.stringify(anchor) }))
      .execute();
    await tx.deleteFrom("audit_events").where("chain_seq", "<=", through).execute();
  });
  return { pruned: through - from, throughSeq: through };
}
