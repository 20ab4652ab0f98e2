import { afterEach, describe, expect, it } from "vitest";
import { availableBackends } from "../../test/helpers/backends.js";
import { Store } from "../store/index.js";
import { canonicalJson } from "./canonical-json.js";
import { GENESIS_CHAIN_HASH, eventLeafHash, nextChainHash } from "./chain.js";
import { verifyCheckpoint } from "./checkpoint.js";
import { AuditCheckpointer, proveConsistency, proveInclusion } from "./checkpointer.js";
import { StoreAuditLog } from "./log.js";
import { verifyConsistency, verifyInclusion } from "./merkle.js";
import { verifyAuditChain } from "./verify.js";

const backends = await availableBackends();

describe.each(backends)("signed checkpoints on $name", (backend) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function setup() {
    const env = await backend.create();
    const store = await Store.open({ dataDir: env.dataDir, storage: env.storage });
    cleanups.push(env.cleanup, () => store.close());
    const log = new StoreAuditLog(store);
    const append = async (n: number) => {
      for (let i = 0; i < n; i++) await log.append({ type: "t", code: "OK", actor: { kind: "system" }, outcome: { status: "ok" }, details: { i } });
    };
    const checkpointer = await AuditCheckpointer.open(store, "mandate.local/audit", { everyEvents: 10, everyMs: 3600_000 });
    return { store, append, checkpointer };
  }

  it("signs checkpoints every N events that verify offline with only the public key", async () => {
    const { store, append, checkpointer } = await setup();
    await append(9);
    expect(await checkpointer.checkpointIfDue()).toBeUndefined();
    await append(3);
    const note = (await checkpointer.checkpointIfDue())!;
    expect(note.startsWith("mandate.local/audit\n12\n")).toBe(true);
    expect(verifyCheckpoint(note, checkpointer.verifierKey)).toMatchObject({ origin: "mandate.local/audit", treeSize: 12 });
    await append(15);
    await checkpointer.checkpointIfDue();
    const result = await verifyAuditChain(store, { verifierKey: checkpointer.verifierKey });
    expect(result).toMatchObject({ ok: true, events: 27, checkpointsVerified: 2 });
  });

  it("proves inclusion of one event and consistency between two checkpoints", async () => {
    const { store, append, checkpointer } = await setup();
    await append(11);
    await checkpointer.checkpointIfDue();
    await append(20);
    await checkpointer.checkpointIfDue();
    const inclusion = await proveInclusion(store, 5);
    expect(inclusion.treeSize).toBe(31);
    const hex = (h: string) => Buffer.from(h, "hex");
    expect(verifyInclusion(hex(inclusion.leafHash), 4, inclusion.treeSize, inclusion.proof.map(hex), hex(inclusion.rootHash))).toBe(true);
    expect(verifyInclusion(hex(inclusion.leafHash), 5, inclusion.treeSize, inclusion.proof.map(hex), hex(inclusion.rootHash))).toBe(false);
    const consistency = await proveConsistency(store, 11, 31);
    expect(verifyConsistency(11, 31, hex(consistency.oldRoot), hex(consistency.newRoot), consistency.proof.map(hex))).toBe(true);
    await expect(proveConsistency(store, 12, 31)).rejects.toThrow("checkpoints");
  });

  it("catches a tail cut after a checkpoint even when the head was rewritten to match", async () => {
    const { store, append, checkpointer } = await setup();
    await append(12);
    await checkpointer.checkpointIfDue();
    const last = await store.db.selectFrom("audit_events").select(["chain_hash"]).where("chain_seq", "=", 9).executeTakeFirstOrThrow();
    await store.db.deleteFrom("audit_events").where("chain_seq", ">", 9).execute();
    await store.db.updateTable("audit_chain_head").set({ seq: 9, chain_hash: last.chain_hash! }).where("id", "=", 1).execute();
    const result = await verifyAuditChain(store, { verifierKey: checkpointer.verifierKey });
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([expect.objectContaining({ kind: "truncated", seq: 12 })]);
  });

  it("catches a rewritten history whose hash chain was recomputed, through the signed root", async () => {
    const { store, append, checkpointer } = await setup();
    await append(12);
    await checkpointer.checkpointIfDue();
    // The attacker edits event 3 and recomputes every leaf and link after it.
    const rows = await store.db.selectFrom("audit_events").select(["id", "chain_seq", "body"]).orderBy("chain_seq").execute();
    let chain = GENESIS_CHAIN_HASH;
    for (const row of rows) {
      const body = Number(row.chain_seq) === 3 ? canonicalJson({ ...JSON.parse(row.body), code: "FORGED" }) : row.body;
      const leaf = eventLeafHash(body);
      chain = nextChainHash(chain, leaf);
      await store.db.updateTable("audit_events").set({ body, leaf_hash: leaf, chain_hash: chain }).where("id", "=", row.id).execute();
    }
    await store.db.updateTable("audit_chain_head").set({ chain_hash: chain }).where("id", "=", 1).execute();
    const result = await verifyAuditChain(store, { verifierKey: checkpointer.verifierKey });
    expect(result.problems).toEqual([expect.objectContaining({ kind: "checkpoint", seq: 12 })]);
  });
});

describe.each(backends)("retention on $name", (backend) => {
  it("prunes up to a signed checkpoint and still verifies, and catches tampering after the prefix", async () => {
    const env = await backend.create();
    const store = await Store.open({ dataDir: env.dataDir, storage: env.storage });
    try {
      const log = new StoreAuditLog(store);
      const append = async (n: number) => {
        for (let i = 0; i < n; i++) await log.append({ type: "t", code: "OK", actor: { kind: "system" }, outcome: { status: "ok" }, details: { i } });
      };
      const checkpointer = await AuditCheckpointer.open(store, "mandate.local/audit", { everyEvents: 1_000_000, everyMs: 3600_000 });
      await append(20);
      await checkpointer.checkpointIfDue(true);
      await append(10);
      const { pruneAuditLog } = await import("./retention.js");
      expect(await pruneAuditLog(store, new Date(Date.now() + 1000))).toEqual({ pruned: 20, throughSeq: 20 });
      expect(Number((await store.db.selectFrom("audit_events").select(({ fn }) => fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n)).toBe(10);
      const clean = await verifyAuditChain(store, { verifierKey: checkpointer.verifierKey });
      expect(clean).toMatchObject({ ok: true, events: 10, checkpointsVerified: 1 });

      // A fresh checkpointer (a restart) continues the tree from the anchor.
      const restarted = await AuditCheckpointer.open(store, "mandate.local/audit");
      await append(5);
      await restarted.checkpointIfDue(true);
      expect(await verifyAuditChain(store, { verifierKey: checkpointer.verifierKey })).toMatchObject({ ok: true, events: 15, checkpointsVerified: 2 });
      await expect(proveInclusion(store, 25)).rejects.toThrow("pruned");

      await store.db.updateTable("audit_events").set({ body: '{"forged":1}' }).where("chain_seq", "=", 25).execute();
      const tampered = await verifyAuditChain(store, { verifierKey: checkpointer.verifierKey });
      expect(tampered.problems[0]).toMatchObject({ kind: "altered", seq: 25 });
    } finally {
      await store.close();
      await env.cleanup();
    }
  });
});
