/**
 * RFC 6962 / RFC 9162 Merkle tree hashing over SHA-256.
 *
 * The audit log is a Merkle tree so that one event can be proven present
 * (inclusion) and one signed checkpoint can be proven a prefix of a later one
 * (consistency) by anyone holding only the hashes, with the same algorithms
 * existing transparency-log tooling implements.
 *
 * Tree sizes and indexes are JavaScript numbers; every function rejects values
 * that are not safe integers, so arithmetic below never silently loses bits.
 * Bitwise operators are avoided on purpose: they truncate to 32 bits.
 */
import { createHash, hash } from "node:crypto";
import { MandateError } from "../errors/index.js";

export const HASH_SIZE = 32;

/** MTH({}): RFC 6962 defines the empty tree's hash as the hash of no input. */
export const EMPTY_TREE_HASH: Buffer = createHash("sha256").digest();

const LEAF_PREFIX = Buffer.from([0x00]);
const NODE_PREFIX = Buffer.from([0x01]);

/** The 0x00 prefix keeps a leaf from ever colliding with an interior node (second-preimage attack). */
export function leafHash(data: Uint8Array): Buffer {
  return createHash("sha256").update(LEAF_PREFIX).update(data).digest();
}

// One reusable input buffer: node hashing runs once per appended leaf when verifying, and is synchronous.
const NODE_INPUT = Buffer.alloc(1 + 2 * HASH_SIZE);
NODE_INPUT[0] = 0x01;

export function nodeHash(left: Uint8Array, right: Uint8Array): Buffer {
  if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) return createHash("sha256").update(NODE_PREFIX).update(left).update(right).digest();
  NODE_INPUT.set(left, 1);
  NODE_INPUT.set(right, 1 + HASH_SIZE);
  return hash("sha256", NODE_INPUT, "buffer");
}

/** Root of the tree whose leaves have these hashes (MTH in RFC 6962 §2.1). */
export function treeHash(leafHashes: readonly Buffer[]): Buffer {
  checkLeafHashes(leafHashes);
  return rangeHash(leafHashes, 0, leafHashes.length);
}

/** The audit path for leaf `index` in the tree of all `leafHashes` (PATH in RFC 6962 §2.1.1). */
export function inclusionProof(leafHashes: readonly Buffer[], index: number): Buffer[] {
  checkLeafHashes(leafHashes);
  if (!Number.isSafeInteger(index) || index < 0 || index >= leafHashes.length) {
    throw new MandateError("INVALID_ARGUMENT", `leaf index ${String(index)} is outside a tree of size ${leafHashes.length}`);
  }
  const proof: Buffer[] = [];
  collectPath(leafHashes, index, 0, leafHashes.length, proof);
  return proof;
}

/**
 * The proof that the tree of the first `oldSize` leaves is a prefix of the tree
 * of all `leafHashes` (PROOF / SUBPROOF in RFC 6962 §2.1.2).
 */
export function consistencyProof(leafHashes: readonly Buffer[], oldSize: number): Buffer[] {
  checkLeafHashes(leafHashes);
  if (!Number.isSafeInteger(oldSize) || oldSize < 0 || oldSize > leafHashes.length) {
    throw new MandateError("INVALID_ARGUMENT", `old tree size ${String(oldSize)} is outside 0..${leafHashes.length}`);
  }
  const proof: Buffer[] = [];
  // An empty old tree or an identical tree needs no proof: there is nothing to reconcile.
  if (oldSize === 0 || oldSize === leafHashes.length) return proof;
  collectSubproof(leafHashes, oldSize, 0, leafHashes.length, true, proof);
  return proof;
}

/**
 * RFC 9162 §2.1.3.2. Returns false, never throws, for any input that does not
 * prove inclusion, including malformed sizes and hashes: a verifier must fail
 * closed on hostile proofs.
 */
export function verifyInclusion(
  leafHashValue: Uint8Array,
  index: number,
  treeSize: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isSize(treeSize) || !isSize(index) || index >= treeSize) return false;
  if (!isHash(leafHashValue) || !isHash(root) || !Array.isArray(proof) || !proof.every(isHash)) return false;
  let fn = index;
  let sn = treeSize - 1;
  let r: Buffer = Buffer.from(leafHashValue);
  for (const p of proof) {
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      r = nodeHash(p, r);
      // Skip the levels where this node is the rightmost of an unbalanced tree and has no sibling.
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && r.equals(root);
}

/**
 * RFC 9162 §2.1.4.2. An empty old tree is consistent with any new tree, but only
 * if its claimed root really is the empty-tree hash, so a forged "size 0"
 * checkpoint cannot carry an arbitrary root.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!isSize(oldSize) || !isSize(newSize) || oldSize > newSize) return false;
  if (!isHash(oldRoot) || !isHash(newRoot) || !Array.isArray(proof) || !proof.every(isHash)) return false;
  const oldRootBuf = Buffer.from(oldRoot);
  if (oldSize === 0 && !oldRootBuf.equals(EMPTY_TREE_HASH)) return false;
  if (oldSize === newSize) return proof.length === 0 && oldRootBuf.equals(newRoot);
  if (oldSize === 0) return proof.length === 0;
  if (proof.length === 0) return false;

  // When the old tree is a complete subtree its root is itself the first node of the path.
  const path = isPowerOfTwo(oldSize) ? [oldRootBuf, ...proof] : [...proof];
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (isOdd(fn)) {
    fn = half(fn);
    sn = half(sn);
  }
  let fr: Buffer = Buffer.from(path[0]!);
  let sr: Buffer = fr;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return false;
    if (isOdd(fn) || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (!isOdd(fn) && fn !== 0) {
        fn = half(fn);
        sn = half(sn);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = half(fn);
    sn = half(sn);
  }
  return sn === 0 && fr.equals(oldRootBuf) && sr.equals(newRoot);
}

/**
 * The right edge of the tree (a "compact range"): the roots of the perfect
 * subtrees that make up the first `size` leaves, largest first. A log appends
 * with it in O(log N) memory and can persist it with a checkpoint to resume
 * without rereading every leaf.
 */
export class MerkleAccumulator {
  #size = 0;
  readonly #edge: Buffer[] = [];

  static fromLeaves(leafHashes: readonly Buffer[]): MerkleAccumulator {
    const acc = new MerkleAccumulator();
    for (const h of leafHashes) acc.append(h);
    return acc;
  }

  /** Resumes from a persisted right edge; the number of hashes must match the bits set in `size`. */
  static restore(size: number, rightEdge: readonly Uint8Array[]): MerkleAccumulator {
    if (!isSize(size)) throw new MandateError("INVALID_ARGUMENT", `tree size ${String(size)} is not a non-negative safe integer`);
    if (!Array.isArray(rightEdge) || rightEdge.length !== popCount(size) || !rightEdge.every(isHash)) {
      throw new MandateError(
        "INVALID_ARGUMENT",
        `a tree of size ${size} has a right edge of ${popCount(size)} ${HASH_SIZE}-byte hashes`,
      );
    }
    const acc = new MerkleAccumulator();
    acc.#size = size;
    for (const h of rightEdge) acc.#edge.push(Buffer.from(h));
    return acc;
  }

  get size(): number {
    return this.#size;
  }

  append(leafHashValue: Uint8Array): void {
    if (!isHash(leafHashValue)) throw new MandateError("INVALID_ARGUMENT", `a leaf hash must be ${HASH_SIZE} bytes`);
    if (this.#size >= Number.MAX_SAFE_INTEGER) throw new MandateError("INVALID_ARGUMENT", "the tree is at its maximum size");
    this.#edge.push(Buffer.from(leafHashValue));
    // Each trailing 1 bit of the old size is a perfect subtree the new leaf now completes.
    for (let n = this.#size; isOdd(n); n = half(n)) {
      const right = this.#edge.pop()!;
      const left = this.#edge.pop()!;
      this.#edge.push(nodeHash(left, right));
    }
    this.#size++;
  }

  root(): Buffer {
    const last = this.#edge.length - 1;
    if (last < 0) return Buffer.from(EMPTY_TREE_HASH);
    let r = this.#edge[last]!;
    for (let i = last - 1; i >= 0; i--) r = nodeHash(this.#edge[i]!, r);
    return Buffer.from(r);
  }

  rightEdge(): Buffer[] {
    return this.#edge.map((h) => Buffer.from(h));
  }
}

function rangeHash(leaves: readonly Buffer[], lo: number, hi: number): Buffer {
  const n = hi - lo;
  if (n === 0) return Buffer.from(EMPTY_TREE_HASH);
  // Copy so callers that mutate a returned hash cannot corrupt their own leaf list.
  if (n === 1) return Buffer.from(leaves[lo]!);
  const k = splitPoint(n);
  return nodeHash(rangeHash(leaves, lo, lo + k), rangeHash(leaves, lo + k, hi));
}

function collectPath(leaves: readonly Buffer[], m: number, lo: number, hi: number, out: Buffer[]): void {
  const n = hi - lo;
  if (n <= 1) return;
  const k = splitPoint(n);
  if (m < k) {
    collectPath(leaves, m, lo, lo + k, out);
    out.push(rangeHash(leaves, lo + k, hi));
  } else {
    collectPath(leaves, m - k, lo + k, hi, out);
    out.push(rangeHash(leaves, lo, lo + k));
  }
}

function collectSubproof(leaves: readonly Buffer[], m: number, lo: number, hi: number, complete: boolean, out: Buffer[]): void {
  const n = hi - lo;
  if (m === n) {
    // The verifier already knows the old root when the old tree is this whole subtree.
    if (!complete) out.push(rangeHash(leaves, lo, hi));
    return;
  }
  const k = splitPoint(n);
  if (m <= k) {
    collectSubproof(leaves, m, lo, lo + k, complete, out);
    out.push(rangeHash(leaves, lo + k, hi));
  } else {
    collectSubproof(leaves, m - k, lo + k, hi, false, out);
    out.push(rangeHash(leaves, lo, lo + k));
  }
}

/** The largest power of two strictly less than n (n >= 2). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

function checkLeafHashes(leafHashes: readonly Buffer[]): void {
  if (!Array.isArray(leafHashes)) throw new MandateError("INVALID_ARGUMENT", "leaf hashes must be an array");
  for (let i = 0; i < leafHashes.length; i++) {
    if (!isHash(leafHashes[i])) {
      throw new MandateError("INVALID_ARGUMENT", `leaf hash ${i} is not a ${HASH_SIZE}-byte hash`);
    }
  }
}

function isHash(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array && value.length === HASH_SIZE;
}

function isSize(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function isOdd(n: number): boolean {
  return n % 2 === 1;
}

function half(n: number): number {
  return Math.floor(n / 2);
}

function isPowerOfTwo(n: number): boolean {
  while (n > 1 && !isOdd(n)) n = half(n);
  return n === 1;
}

function popCount(n: number): number {
  let count = 0;
  for (; n > 0; n = half(n)) if (isOdd(n)) count++;
  return count;
}
