import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import {
  EMPTY_TREE_HASH,
  MerkleAccumulator,
  consistencyProof,
  inclusionProof,
  leafHash,
  nodeHash,
  treeHash,
  verifyConsistency,
  verifyInclusion,
} from "./merkle.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const h = (s: string): Buffer => Buffer.from(s, "hex");
const sha256 = (...parts: Uint8Array[]): Buffer => {
  const hash = createHash("sha256");
  for (const p of parts) hash.update(p);
  return hash.digest();
};

/** Leaf inputs and roots published with the reference RFC 6962 implementations (sizes 1..8). */
const LEAF_INPUTS = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"].map(h);
const ROOTS = [
  "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
const LEAVES = LEAF_INPUTS.map((d) => leafHash(d));

/** A second MTH written straight from the RFC's recursive definition over the raw data, sharing no code. */
function referenceRoot(data: readonly Uint8Array[]): Buffer {
  if (data.length === 0) return sha256();
  if (data.length === 1) return sha256(Buffer.from([0]), data[0]!);
  let k = 1;
  while (k * 2 < data.length) k *= 2;
  return sha256(Buffer.from([1]), referenceRoot(data.slice(0, k)), referenceRoot(data.slice(k)));
}

function leavesOf(n: number, seed = 0): Buffer[] {
  return Array.from({ length: n }, (_, i) => leafHash(Buffer.from(`event-${seed}-${i}`)));
}

function flipped(b: Uint8Array, byte: number, bit = 0): Buffer {
  const c = Buffer.from(b);
  c[byte % c.length]! ^= 1 << bit;
  return c;
}

describe("hashing definitions", () => {
  it("hashes the empty tree to SHA-256 of nothing", () => {
    expect(hex(EMPTY_TREE_HASH)).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(hex(treeHash([]))).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(new MerkleAccumulator().root()).toEqual(EMPTY_TREE_HASH);
  });

  it("hashes a one-leaf tree to SHA-256(0x00 || data)", () => {
    // By hand: the single byte 0x00 followed by no data.
    expect(hex(sha256(Buffer.from([0x00])))).toBe("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    expect(hex(leafHash(new Uint8Array(0)))).toBe("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    expect(hex(treeHash([leafHash(new Uint8Array(0))]))).toBe("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    expect(leafHash(Buffer.from("L123456"))).toEqual(sha256(Buffer.from([0x00]), Buffer.from("L123456")));
  });

  it("domain-separates interior nodes with 0x01 and keeps order", () => {
    const l = Buffer.from("N123");
    const r = Buffer.from("N456");
    expect(nodeHash(l, r)).toEqual(sha256(Buffer.from([0x01]), l, r));
    expect(hex(nodeHash(l, r))).toBe("aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb");
    expect(nodeHash(l, r)).not.toEqual(nodeHash(r, l));
    // A leaf whose data is two concatenated hashes must not collide with the node over them.
    expect(leafHash(Buffer.concat([LEAVES[0]!, LEAVES[1]!]))).not.toEqual(nodeHash(LEAVES[0]!, LEAVES[1]!));
  });

  it("matches the published roots for sizes 0..8, computed two independent ways", () => {
    for (let n = 0; n <= 8; n++) {
      expect(hex(treeHash(LEAVES.slice(0, n))), `size ${n}`).toBe(ROOTS[n]);
      expect(hex(referenceRoot(LEAF_INPUTS.slice(0, n))), `size ${n}`).toBe(ROOTS[n]);
      expect(hex(MerkleAccumulator.fromLeaves(LEAVES.slice(0, n)).root()), `size ${n}`).toBe(ROOTS[n]);
    }
  });

  it("does not duplicate the last leaf of an odd level (unlike Bitcoin-style trees)", () => {
    const three = LEAVES.slice(0, 3);
    expect(treeHash(three)).toEqual(nodeHash(nodeHash(three[0]!, three[1]!), three[2]!));
  });

  it("rejects leaf hashes of the wrong length", () => {
    expect(() => treeHash([Buffer.alloc(31)])).toThrow(/leaf hash 0/);
    expect(() => new MerkleAccumulator().append(Buffer.alloc(33))).toThrow(/32 bytes/);
  });
});

describe("published proof vectors", () => {
  const proofHex = (p: Buffer[]): string[] => p.map(hex);

  it("produces and verifies the reference inclusion proofs", () => {
    const cases: Array<[index: number, size: number, proof: string[]]> = [
      [0, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
      ]],
      [5, 8, [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      ]],
      [2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]],
      [1, 5, [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      ]],
      [0, 1, []],
    ];
    for (const [index, size, want] of cases) {
      const proof = inclusionProof(LEAVES.slice(0, size), index);
      expect(proofHex(proof), `leaf ${index} of ${size}`).toEqual(want);
      expect(verifyInclusion(LEAVES[index]!, index, size, want.map(h), h(ROOTS[size]!))).toBe(true);
    }
  });

  it("produces and verifies the reference consistency proofs", () => {
    const cases: Array<[oldSize: number, newSize: number, proof: string[]]> = [
      [1, 8, [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
      ]],
      [6, 8, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      ]],
      [2, 5, [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      ]],
      [6, 7, [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
      ]],
      [1, 1, []],
    ];
    for (const [oldSize, newSize, want] of cases) {
      expect(proofHex(consistencyProof(LEAVES.slice(0, newSize), oldSize)), `${oldSize} -> ${newSize}`).toEqual(want);
      expect(verifyConsistency(oldSize, newSize, h(ROOTS[oldSize]!), h(ROOTS[newSize]!), want.map(h))).toBe(true);
    }
  });
});

describe("edge cases of verification", () => {
  const root = treeHash(LEAVES);

  it("refuses proofs for impossible positions", () => {
    expect(verifyInclusion(LEAVES[0]!, 0, 0, [], EMPTY_TREE_HASH)).toBe(false);
    expect(verifyInclusion(LEAVES[0]!, 1, 1, [], LEAVES[0]!)).toBe(false);
    expect(verifyInclusion(LEAVES[0]!, -1, 8, inclusionProof(LEAVES, 0), root)).toBe(false);
    expect(verifyInclusion(LEAVES[0]!, 0.5, 8, inclusionProof(LEAVES, 0), root)).toBe(false);
    expect(verifyInclusion(LEAVES[0]!, 0, Number.NaN, inclusionProof(LEAVES, 0), root)).toBe(false);
    expect(verifyInclusion(LEAVES[0]!, 0, 2 ** 60, inclusionProof(LEAVES, 0), root)).toBe(false);
  });

  it("refuses a truncated proof even when it ends at the root of a subtree", () => {
    const subtreeRoot = treeHash(LEAVES.slice(0, 4));
    expect(verifyInclusion(LEAVES[0]!, 0, 8, inclusionProof(LEAVES, 0).slice(0, 2), subtreeRoot)).toBe(false);
    expect(verifyInclusion(LEAVES[0]!, 0, 2, [], LEAVES[0]!)).toBe(false);
  });

  it("refuses hashes of the wrong length even when the bytes would otherwise line up", () => {
    expect(verifyInclusion(Buffer.alloc(0), 0, 1, [], Buffer.alloc(0))).toBe(false);
    expect(verifyInclusion(LEAVES[0]!, 0, 8, [...inclusionProof(LEAVES, 0), Buffer.alloc(0)], root)).toBe(false);
  });

  it("treats an empty old tree as consistent only when its root is the empty hash", () => {
    expect(verifyConsistency(0, 8, EMPTY_TREE_HASH, root, [])).toBe(true);
    expect(verifyConsistency(0, 0, EMPTY_TREE_HASH, EMPTY_TREE_HASH, [])).toBe(true);
    expect(verifyConsistency(0, 8, LEAVES[0]!, root, [])).toBe(false);
    expect(verifyConsistency(0, 8, EMPTY_TREE_HASH, root, [EMPTY_TREE_HASH])).toBe(false);
  });

  it("refuses a truncated consistency proof that ends at the root of a subtree of the new tree", () => {
    const proof = consistencyProof(LEAVES, 2);
    expect(verifyConsistency(2, 8, h(ROOTS[2]!), root, proof)).toBe(true);
    expect(verifyConsistency(2, 8, h(ROOTS[2]!), h(ROOTS[4]!), proof.slice(0, 1))).toBe(false);
  });

  it("refuses time travel, mismatched equal-size roots and empty proofs", () => {
    expect(verifyConsistency(8, 7, root, h(ROOTS[7]!), [])).toBe(false);
    expect(verifyConsistency(8, 8, root, h(ROOTS[7]!), [])).toBe(false);
    expect(verifyConsistency(8, 8, root, root, [root])).toBe(false);
    expect(verifyConsistency(3, 8, h(ROOTS[3]!), root, [])).toBe(false);
  });

  it("rejects out-of-range proof requests with INVALID_ARGUMENT", () => {
    for (const f of [() => inclusionProof(LEAVES, 8), () => inclusionProof([], 0), () => consistencyProof(LEAVES, 9), () => consistencyProof(LEAVES, -1)]) {
      try {
        f();
        expect.unreachable();
      } catch (e) {
        expect(isMandateError(e, "INVALID_ARGUMENT")).toBe(true);
      }
    }
  });
});

describe("MerkleAccumulator", () => {
  it("equals treeHash at every size 0..300", () => {
    const leaves = leavesOf(300);
    const acc = new MerkleAccumulator();
    expect(acc.root()).toEqual(treeHash([]));
    for (let n = 1; n <= 300; n++) {
      acc.append(leaves[n - 1]!);
      expect(acc.size).toBe(n);
      expect(hex(acc.root()), `size ${n}`).toBe(hex(treeHash(leaves.slice(0, n))));
      // O(log N) memory: one hash per set bit of the size.
      expect(acc.rightEdge().length).toBe(n.toString(2).replaceAll("0", "").length);
    }
  });

  it("resumes from a persisted right edge and keeps agreeing", () => {
    const leaves = leavesOf(100, 7);
    const first = MerkleAccumulator.fromLeaves(leaves.slice(0, 37));
    const resumed = MerkleAccumulator.restore(first.size, first.rightEdge());
    for (const l of leaves.slice(37)) resumed.append(l);
    expect(resumed.root()).toEqual(treeHash(leaves));
    expect(() => MerkleAccumulator.restore(37, first.rightEdge().slice(1))).toThrow(/right edge/);
    expect(() => MerkleAccumulator.restore(-1, [])).toThrow(/tree size/);
  });

  it("does not let callers corrupt its state through returned or appended buffers", () => {
    const leaf = leafHash(Buffer.from("x"));
    const acc = new MerkleAccumulator();
    acc.append(leaf);
    leaf.fill(0);
    acc.root().fill(0);
    acc.rightEdge()[0]!.fill(0);
    expect(acc.root()).toEqual(leafHash(Buffer.from("x")));
  });

  it("equals treeHash for random leaf data (property)", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 70 }), (data) => {
        const leaves = data.map((d) => leafHash(d));
        const root = MerkleAccumulator.fromLeaves(leaves).root();
        expect(root).toEqual(treeHash(leaves));
        expect(root).toEqual(referenceRoot(data));
      }),
    );
  });
});

describe("proof properties", () => {
  const sized = fc.integer({ min: 1, max: 130 }).chain((size) => fc.tuple(fc.constant(size), fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 0, max: 1000 })));

  it("every inclusion proof verifies, and any single corruption fails", () => {
    fc.assert(
      fc.property(sized, fc.nat(), fc.integer({ min: 0, max: 7 }), ([size, index, seed], pick, bit) => {
        const longer = leavesOf(size * 2 + 1, seed);
        const leaves = longer.slice(0, size);
        const root = treeHash(leaves);
        const proof = inclusionProof(leaves, index);
        const leaf = leaves[index]!;
        expect(verifyInclusion(leaf, index, size, proof, root)).toBe(true);

        expect(verifyInclusion(flipped(leaf, pick, bit), index, size, proof, root)).toBe(false);
        expect(verifyInclusion(leaf, index, size, proof, flipped(root, pick, bit))).toBe(false);
        if (proof.length > 0) {
          const i = pick % proof.length;
          const bad = proof.map((p, j) => (j === i ? flipped(p, pick >> 5, bit) : p));
          expect(verifyInclusion(leaf, index, size, bad, root)).toBe(false);
          expect(verifyInclusion(leaf, index, size, proof.slice(0, -1), root)).toBe(false);
        }
        expect(verifyInclusion(leaf, index, size, [...proof, root], root)).toBe(false);
        // A different leaf in the same tree never verifies at this index, nor does this leaf at another.
        if (size > 1) {
          const other = (index + 1 + (pick % (size - 1))) % size;
          expect(verifyInclusion(leaves[other]!, index, size, proof, root)).toBe(false);
          expect(verifyInclusion(leaf, other, size, proof, root)).toBe(false);
        }
        // The size is bound only through the root it is checked against, so a wrong size is
        // tested against the real root of a tree of that size from the same log.
        for (const wrongSize of [size + 1, size * 2, Math.floor(size / 2)]) {
          if (wrongSize !== size && wrongSize > index) {
            expect(verifyInclusion(leaf, index, wrongSize, proof, treeHash(longer.slice(0, wrongSize)))).toBe(false);
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  it("every consistency proof verifies, and any single corruption fails", () => {
    const pair = fc.integer({ min: 1, max: 130 }).chain((newSize) => fc.tuple(fc.integer({ min: 0, max: newSize }), fc.constant(newSize), fc.integer({ min: 0, max: 1000 })));
    fc.assert(
      fc.property(pair, fc.nat(), fc.integer({ min: 0, max: 7 }), ([oldSize, newSize, seed], pick, bit) => {
        const leaves = leavesOf(newSize, seed);
        const oldRoot = treeHash(leaves.slice(0, oldSize));
        const newRoot = treeHash(leaves);
        const proof = consistencyProof(leaves, oldSize);
        expect(verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof)).toBe(true);
        // The accumulator's roots are what checkpoints will carry; they must verify the same.
        expect(verifyConsistency(oldSize, newSize, MerkleAccumulator.fromLeaves(leaves.slice(0, oldSize)).root(), MerkleAccumulator.fromLeaves(leaves).root(), proof)).toBe(true);

        expect(verifyConsistency(oldSize, newSize, flipped(oldRoot, pick, bit), newRoot, proof)).toBe(false);
        // An empty old tree is consistent with every new tree, so only a non-empty one pins the new root.
        if (oldSize > 0) expect(verifyConsistency(oldSize, newSize, oldRoot, flipped(newRoot, pick, bit), proof)).toBe(false);
        if (proof.length > 0) {
          const i = pick % proof.length;
          const bad = proof.map((p, j) => (j === i ? flipped(p, pick >> 5, bit) : p));
          expect(verifyConsistency(oldSize, newSize, oldRoot, newRoot, bad)).toBe(false);
          expect(verifyConsistency(oldSize, newSize, oldRoot, newRoot, proof.slice(0, -1))).toBe(false);
          expect(verifyConsistency(oldSize, newSize, oldRoot, newRoot, [...proof, newRoot])).toBe(false);
        }
        // Sizes are bound only through the roots they are checked against, so a wrong size is
        // tested with the real root of a tree of that size from the same log.
        if (oldSize > 0 && oldSize < newSize) {
          const longer = leavesOf(newSize + 1, seed);
          expect(verifyConsistency(oldSize + 1, newSize, treeHash(longer.slice(0, oldSize + 1)), newRoot, proof)).toBe(false);
          expect(verifyConsistency(oldSize - 1, newSize, treeHash(longer.slice(0, oldSize - 1)), newRoot, proof)).toBe(false);
          expect(verifyConsistency(oldSize, newSize + 1, oldRoot, treeHash(longer), proof)).toBe(false);
          expect(verifyConsistency(oldSize, newSize - 1, oldRoot, treeHash(longer.slice(0, newSize - 1)), proof)).toBe(false);
        }
        // A forked log (one changed leaf in the old range) cannot prove consistency.
        if (oldSize > 0 && oldSize < newSize) {
          const forked = [...leaves];
          forked[pick % oldSize] = leafHash(Buffer.from("forged"));
          expect(verifyConsistency(oldSize, newSize, oldRoot, treeHash(forked), consistencyProof(forked, oldSize))).toBe(false);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("verifies every (index, size) and every (old, new) pair exhaustively for small trees", () => {
    const leaves = leavesOf(40, 3);
    const roots = Array.from({ length: 41 }, (_, n) => treeHash(leaves.slice(0, n)));
    for (let size = 1; size <= 40; size++) {
      const prefix = leaves.slice(0, size);
      for (let i = 0; i < size; i++) {
        expect(verifyInclusion(leaves[i]!, i, size, inclusionProof(prefix, i), roots[size]!)).toBe(true);
      }
      for (let old = 0; old <= size; old++) {
        const proof = consistencyProof(prefix, old);
        expect(verifyConsistency(old, size, roots[old]!, roots[size]!, proof), `${old} -> ${size}`).toBe(true);
        if (old > 0 && old < size) expect(verifyConsistency(old, size, roots[old - 1]!, roots[size]!, proof)).toBe(false);
      }
    }
  });
});
