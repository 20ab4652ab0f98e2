import type { Store } from "../store/index.js";
import { GENESIS_CHAIN_HASH, eventLeafHash, nextChainHash } from "./chain.js";

export type ChainProblemKind = "altered" | "removed" | "inserted-or-reordered" | "truncated" | "unchained";

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
  problems: ChainProblem[];
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
export async function verifyAuditChain(store: Store, onProgress?: (checked: number) => void): Promise<ChainVerification> {
  const problems: ChainProblem[] = [];
  const report = (problem: ChainProblem) => {
    if (problems.length < MAX_PROBLEMS) problems.push(problem);
  };
  let expectedSeq = 1;
  let previousChain = GENESIS_CHAIN_HASH;
  let events = 0;
  let after = 0;
  for (;;) {
    const rows = await store.db
      .selectFrom("audit_events")
      .select(["id", "chain_seq", "leaf_hash", "chain_hash", "body"])
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
      const leaf = eventLeafHash(row.body);
      if (leaf !== row.leaf_hash) {
        report({ kind: "altered", seq, eventId: row.id, message: `event ${seq} (${row.id}) was altered: its content no longer matches its hash` });
      } else if (seq === expectedSeq && nextChainHash(previousChain, leaf) !== row.chain_hash) {
        report({ kind: "inserted-or-reordered", seq, eventId: row.id, message: `event ${seq} (${row.id}) does not follow event ${seq - 1}: an event was inserted or the order changed` });
      }
      // Continue from the stored link so one problem is reported once, not for every later event.
      previousChain = row.chain_hash ?? previousChain;
      expectedSeq = seq + 1;
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
  return { ok: problems.length === 0, events, headSeq, problems };
}
