import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { mkdir, open } from "node:fs/promises";
import { dirname } from "node:path";
import { MandateError } from "../errors/index.js";
import type { Store } from "../store/index.js";
import { type AuditSigningKey, auditSigningKeyFromPrivateKey, formatCheckpointBody, signCheckpoint } from "./checkpoint.js";
import { MerkleAccumulator, consistencyProof, inclusionProof } from "./merkle.js";
import { accumulatorFromAnchor, readPruneAnchor } from "./retention.js";

const KEY_META = "audit_checkpoint_key";
const PAGE = 20_000;

/** Leaf hashes of events 1..upTo, in chain order. */
export async function readLeafHashes(store: Store, upTo: number, from = 0, into: Buffer[] = []): Promise<Buffer[]> {
  let after = from;
  while (after < upTo) {
    const rows = await store.db
      .selectFrom("audit_events")
      .select(["chain_seq", "leaf_hash"])
      .where("chain_seq", ">", after)
      .where("chain_seq", "<=", upTo)
      .orderBy("chain_seq")
      .limit(PAGE)
      .execute();
    if (rows.length === 0) break;
    for (const row of rows) {
      if (Number(row.chain_seq) !== after + 1) throw new MandateError("AUDIT_TAMPERED", `event ${after + 1} is missing from the audit log`);
      into.push(Buffer.from(row.leaf_hash ?? "", "hex"));
      after++;
    }
  }
  return into;
}

/** The audit signing key: Ed25519, created once per deployment and kept in the store. */
export async function loadAuditSigningKey(store: Store, origin: string): Promise<AuditSigningKey> {
  const existing = await store.getMeta(KEY_META);
  if (!existing) {
    const { privateKey } = generateKeyPairSync("ed25519");
    await store.transaction(async (tx) => {
      await tx
        .insertInto("meta")
        .values({ key: KEY_META, value: privateKey.export({ type: "pkcs8", format: "pem" }).toString() })
        .onConflict((oc) => oc.column("key").doNothing())
        .execute();
    });
  }
  return auditSigningKeyFromPrivateKey(origin, createPrivateKey((await store.getMeta(KEY_META))!));
}

/**
 * Signs a checkpoint (origin, tree size, RFC 6962 root) every `everyEvents` events or
 * `everyMs`, whichever comes first, in the C2SP signed-note format, so transparency-log
 * tooling and anyone holding the public key can check that the log only ever grows.
 */
export class AuditCheckpointer {
  private accumulator = new MerkleAccumulator();
  private timer: NodeJS.Timeout | undefined;
  /** The time rule counts from the last checkpoint, or from start when there is none yet. */
  private lastCheckpointAt: number;
  private busy = false;

  private constructor(
    private readonly store: Store,
    readonly key: AuditSigningKey,
    private readonly options: { everyEvents: number; everyMs: number; now: () => number; onCheckpoint?: ((checkpoint: SignedCheckpoint) => Promise<void>) | undefined },
  ) {
    this.lastCheckpointAt = options.now();
  }

  static async open(
    store: Store,
    origin: string,
    options: { everyEvents?: number; everyMs?: number; now?: () => number; onCheckpoint?: (checkpoint: SignedCheckpoint) => Promise<void> } = {},
  ): Promise<AuditCheckpointer> {
    const key = await loadAuditSigningKey(store, origin);
    return new AuditCheckpointer(store, key, { everyEvents: options.everyEvents ?? 1000, everyMs: options.everyMs ?? 60_000, now: options.now ?? Date.now, onCheckpoint: options.onCheckpoint });
  }

  get verifierKey(): string {
    return this.key.verifierKey;
  }

  start(checkIntervalMs = 1000): void {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      this.checkpointIfDue()
        .catch(() => undefined)
        .finally(() => (this.busy = false));
    }, checkIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Signs a checkpoint now if the log grew enough or long enough ago; returns the note, if one was made. */
  async checkpointIfDue(force = false): Promise<string | undefined> {
    const head = await this.store.db.selectFrom("audit_chain_head").select("seq").where("id", "=", 1).executeTakeFirstOrThrow();
    const size = Number(head.seq);
    const latest = await this.store.db.selectFrom("audit_checkpoints").select(["tree_size", "created_at"]).orderBy("tree_size", "desc").limit(1).executeTakeFirst();
    const latestSize = Number(latest?.tree_size ?? 0);
    if (latest) this.lastCheckpointAt = Math.max(this.lastCheckpointAt, Number(latest.created_at));
    const now = this.options.now();
    const due = size > latestSize && (force || size - latestSize >= this.options.everyEvents || now - this.lastCheckpointAt >= this.options.everyMs);
    if (!due) return undefined;
    if (this.accumulator.size === 0) this.accumulator = accumulatorFromAnchor(await readPruneAnchor(this.store));
    const leaves = await readLeafHashes(this.store, size, this.accumulator.size);
    for (const leaf of leaves) this.accumulator.append(leaf);
    const root = this.accumulator.root();
    const note = signCheckpoint(formatCheckpointBody({ origin: this.key.name, treeSize: size, rootHash: root }), this.key);
    await this.store.transaction(async (tx) => {
      await tx
        .insertInto("audit_checkpoints")
        .values({ tree_size: size, root_hash: root.toString("hex"), note, created_at: now })
        .onConflict((oc) => oc.column("tree_size").doNothing())
        .execute();
    });
    this.lastCheckpointAt = now;
    // Shipping the checkpoint out is what makes a later rewrite of the whole store detectable.
    await this.options.onCheckpoint?.({ treeSize: size, rootHash: root.toString("hex"), createdAt: new Date(now).toISOString(), note });
    return note;
  }
}

export interface SignedCheckpoint {
  treeSize: number;
  rootHash: string;
  createdAt: string;
  note: string;
}

/** Appends each checkpoint as one JSON line; `mandate audit verify --checkpoints` reads the file. */
export function checkpointFileSink(path: string): (checkpoint: SignedCheckpoint) => Promise<void> {
  return async (checkpoint) => {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const handle = await open(path, "a", 0o644);
    try {
      await handle.writeFile(`${JSON.stringify(checkpoint)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
  };
}

export interface InclusionProofResult {
  seq: number;
  leafHash: string;
  treeSize: number;
  rootHash: string;
  proof: string[];
  checkpoint: string;
}

/** Proof that event `seq` is in the tree of the latest checkpoint that covers it. */
export async function proveInclusion(store: Store, seq: number): Promise<InclusionProofResult> {
  const checkpoint = await store.db.selectFrom("audit_checkpoints").selectAll().where("tree_size", ">=", seq).orderBy("tree_size", "desc").limit(1).executeTakeFirst();
  if (!checkpoint) throw new MandateError("NOT_FOUND", `no checkpoint covers event ${seq} yet; checkpoints are signed every few seconds`);
  const size = Number(checkpoint.tree_size);
  await assertNotPruned(store);
  const leaves = await readLeafHashes(store, size);
  return {
    seq,
    leafHash: leaves[seq - 1]!.toString("hex"),
    treeSize: size,
    rootHash: checkpoint.root_hash,
    proof: inclusionProof(leaves, seq - 1).map((h) => h.toString("hex")),
    checkpoint: checkpoint.note,
  };
}

export interface ConsistencyProofResult {
  oldSize: number;
  newSize: number;
  oldRoot: string;
  newRoot: string;
  proof: string[];
}

/** Proof that the checkpoint at `newSize` extends the one at `oldSize` (nothing rewritten or removed). */
export async function proveConsistency(store: Store, oldSize: number, newSize: number): Promise<ConsistencyProofResult> {
  if (!(Number.isSafeInteger(oldSize) && Number.isSafeInteger(newSize) && oldSize > 0 && oldSize <= newSize)) {
    throw new MandateError("INVALID_ARGUMENT", "consistency needs two tree sizes with 0 < OLD <= NEW");
  }
  const rows = await store.db.selectFrom("audit_checkpoints").select(["tree_size", "root_hash"]).where("tree_size", "in", [oldSize, newSize]).execute();
  const rootOf = (size: number) => rows.find((r) => Number(r.tree_size) === size)?.root_hash;
  if (!rootOf(oldSize) || !rootOf(newSize)) throw new MandateError("NOT_FOUND", `both sizes must be checkpoints; see \`mandate audit checkpoints\``);
  await assertNotPruned(store);
  const leaves = await readLeafHashes(store, newSize);
  return { oldSize, newSize, oldRoot: rootOf(oldSize)!, newRoot: rootOf(newSize)!, proof: consistencyProof(leaves, oldSize).map((h) => h.toString("hex")) };
}

async function assertNotPruned(store: Store): Promise<void> {
  const anchor = await readPruneAnchor(store);
  if (anchor) {
    throw new MandateError("NOT_FOUND", `events 1..${anchor.seq} were pruned by the retention policy; proofs need the whole log (keep the exported JSON Lines to prove older events)`);
  }
}
