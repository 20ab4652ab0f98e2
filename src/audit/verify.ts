import type { Store } from "../store/index.js";
import { GENESIS_CHAIN_HASH, eventLeafDigest, nextChainHash } from "./chain.js";
import { verifyCheckpoint } from "./checkpoint.js";
import { loadAuditSigningKey } from "./checkpointer.js";
import { accumulatorFromAnchor, readPruneAnchor } from "./retention.js";

export type ChainProblemKind = "altered" | "removed" | "inserted-or-reordered" | "truncated" | "unchained" | "checkpoint";

export interface ChainProblem {
  kind: ChainProblemKind;
  /** The sequence number where the problem shows (for "removed", the first missing one). */
  seq: number;
  eventId?: string;
  message: string;
}

export interface ChainVerification {
  ok: boolean;
  events: number;
  headSeq: number;
  /** Signed checkpoints whose root was recomputed from the events and matched. */
  checkpointsVerified: number;
  problems: ChainProblem[];
}

export interface VerifyOptions {
  onProgress?: (checked: number) => void;
  /** Verifier key of the audit signing key; defaults to the one in the store (prefer one kept elsewhere). */
  verifierKey?: string;
}

const PAGE = 5000;
const MAX_PROBLEMS = 100;

/**
 * Recomputes every leaf and link of the audit chain and names exactly where it breaks:
 * an event whose content no longer matches its leaf hash was altered; a gap in the
 * sequence means events were removed; a link that does not follow from the previous
 * one means an event was inserted or two were swapped; a head ahead of the last event
 * means the tail was cut.
 */
export async function verifyAuditChain(store: Store, options: VerifyOptions | ((checked: number) => void) = {}): Promise<ChainVerification> {
  const { onProgress, verifierKey: givenKey } = typeof options === "function" ? { onProgress: options, verifierKey: undefined } : options;
  const checkpoints = await store.db.selectFrom("audit_checkpoints").selectAll().orderBy("tree_size").execute();
  const verifierKey = checkpoints.length === 0 ? undefined : (givenKey ?? (await storedVerifierKey(store)));
  const problems: ChainProblem[] = [];
  const report = (problem: ChainProblem) => {
    if (problems.length < MAX_PROBLEMS) problems.push(problem);
  };
  const anchor = await readPruneAnchor(store);
  const accumulator = accumulatorFromAnchor(anchor);
  let nextCheckpoint = 0;
  let checkpointsVerified = 0;
  // A pruned prefix is vouched for by the checkpoint at its end: its root must come out of the saved edge.
  while (anchor && nextCheckpoint < checkpoints.length && Number(checkpoints[nextCheckpoint]!.tree_size) <= anchor.seq) {
    const checkpoint = checkpoints[nextCheckpoint++]!;
    if (Number(checkpoint.tree_size) < anchor.seq) continue;
    const problem = checkCheckpoint(checkpoint, accumulator.root().toString("hex"), verifierKey!);
    if (problem) report({ ...problem, message: `${problem.message} (the anchor of the pruned prefix does not match)` });
    else checkpointsVerified++;
  }
  let expectedSeq = 1;
  let previousChain = GENESIS_CHAIN_HASH;
  let after = 0;
  let events = 0;
  if (anchor) {
    expectedSeq = anchor.seq + 1;
    previousChain = anchor.chainHash;
    after = anchor.seq;
  }
  for (;;) {
    const rows = await store.db
      .selectFrom("audit_events")
      .select(["chain_seq", "leaf_hash", "chain_hash", "body"])
      .where("chain_seq", ">", after)
      .orderBy("chain_seq")
      .limit(PAGE)
      .execute();
    if (rows.length === 0) break;
    for (const row of rows) {
      const seq = Number(row.chain_seq);
      events++;
      if (seq > expectedSeq) {
        report({ kind: "removed", seq: expectedSeq, message: seq - expectedSeq === 1 ? `event ${expectedSeq} was removed` : `events ${expectedSeq}..${seq - 1} were removed` });
      }
      const leafDigest = eventLeafDigest(row.body);
      const leaf = leafDigest.toString("hex");
      if (leaf !== row.leaf_hash) {
        const id = await eventIdAt(store, seq);
        report({ kind: "altered", seq, eventId: id, message: `event ${seq} (${id}) was altered: its content no longer matches its hash` });
      } else if (seq === expectedSeq && nextChainHash(previousChain, leaf) !== row.chain_hash) {
        const id = await eventIdAt(store, seq);
        report({ kind: "inserted-or-reordered", seq, eventId: id, message: `event ${seq} (${id}) does not follow event ${seq - 1}: an event was inserted or the order changed` });
      }
      // Continue from the stored link so one problem is reported once, not for every later event.
      previousChain = row.chain_hash ?? previousChain;
      expectedSeq = seq + 1;
      if (checkpoints.length > 0) {
        accumulator.append(leafDigest);
        while (nextCheckpoint < checkpoints.length && Number(checkpoints[nextCheckpoint]!.tree_size) === accumulator.size) {
          const checkpoint = checkpoints[nextCheckpoint++]!;
          const problem = checkCheckpoint(checkpoint, accumulator.root().toString("hex"), verifierKey!);
          if (problem) report(problem);
          else checkpointsVerified++;
        }
      }
    }
    after = Number(rows[rows.length - 1]!.chain_seq);
    onProgress?.(events);
  }
  const unchained = await store.db.selectFrom("audit_events").select(({ fn }) => fn.countAll<number>().as("n")).where("chain_seq", "is", null).executeTakeFirstOrThrow();
  if (Number(unchained.n) > 0) report({ kind: "unchained", seq: 0, message: `${unchained.n} event(s) are outside the chain (written around the log, not through it)` });
  const head = await store.db.selectFrom("audit_chain_head").select(["seq", "chain_hash"]).where("id", "=", 1).executeTakeFirst();
  const headSeq = Number(head?.seq ?? 0);
  if (headSeq > expectedSeq - 1) {
    report({ kind: "truncated", seq: expectedSeq, message: `the log ends at event ${expectedSeq - 1} but its head records ${headSeq}: the last ${headSeq - expectedSeq + 1} event(s) were removed` });
  } else if (head && headSeq === expectedSeq - 1 && head.chain_hash !== previousChain) {
    report({ kind: "inserted-or-reordered", seq: headSeq, message: "the chain head does not match the last event's link" });
  }
  for (const checkpoint of checkpoints.slice(nextCheckpoint)) {
    const size = Number(checkpoint.tree_size);
    report({ kind: "truncated", seq: size, message: `checkpoint ${size} was signed, but the log now holds only ${accumulator.size} verifiable event(s): the tail was cut or rewritten` });
  }
  return { ok: problems.length === 0, events, headSeq, checkpointsVerified, problems };
}

/** Looked up only when reporting, to keep the verification scan narrow. */
async function eventIdAt(store: Store, seq: number): Promise<string> {
  const row = await store.db.selectFrom("audit_events").select("id").where("chain_seq", "=", seq).executeTakeFirst();
  return row?.id ?? "?";
}

async function storedVerifierKey(store: Store): Promise<string> {
  const origin = await store.getMeta("trust_domain");
  return (await loadAuditSigningKey(store, `${origin ?? "mandate.local"}/audit`)).verifierKey;
}

function checkCheckpoint(checkpoint: { tree_size: number; root_hash: string; note: string }, recomputedRoot: string, verifierKey: string): ChainProblem | undefined {
  const size = Number(checkpoint.tree_size);
  try {
    const signed = verifyCheckpoint(checkpoint.note, verifierKey);
    if (signed.treeSize !== size || signed.rootHash.toString("hex") !== checkpoint.root_hash) {
      return { kind: "checkpoint", seq: size, message: `checkpoint ${size}: the stored root differs from the signed one` };
    }
  } catch (error) {
    return { kind: "checkpoint", seq: size, message: `checkpoint ${size}: signature does not verify (${(error as Error).message})` };
  }
  if (recomputedRoot !== checkpoint.root_hash) {
    return { kind: "checkpoint", seq: size, message: `checkpoint ${size}: the events up to ${size} no longer produce the signed root` };
  }
  return undefined;
}
