import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { availableBackends } from "../../test/helpers/backends.js";
import { Store } from "../store/index.js";
import { canonicalJson } from "./canonical-json.js";
import { eventLeafHash, nextChainHash } from "./chain.js";
import { StoreAuditLog } from "./log.js";
import { searchAuditEvents } from "./search.js";
import { verifyAuditChain } from "./verify.js";

const backends = await availableBackends();

describe.each(backends)("audit chain on $name", (backend) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function logWith(n: number) {
    const env = await backend.create();
    const store = await Store.open({ dataDir: env.dataDir, storage: env.storage });
    cleanups.push(env.cleanup, () => store.close());
    const log = new StoreAuditLog(store);
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        log.append({ type: i % 2 ? "identity.renew" : "identity.join", code: "OK", actor: { kind: "agent", agent: `agent-${i % 3}` }, outcome: { status: "ok" }, details: { i } }),
      ),
    );
    return { store, log, env };
  }

  const row = (store: Store, seq: number) => store.db.selectFrom("audit_events").selectAll().where("chain_seq", "=", seq).executeTakeFirstOrThrow();

  it("chains every event and verifies clean", async () => {
    const { store } = await logWith(50);
    const result = await verifyAuditChain(store);
    expect(result).toMatchObject({ ok: true, events: 50, headSeq: 50, problems: [] });
    const first = await row(store, 1);
    expect(first.leaf_hash).toBe(eventLeafHash(first.body));
    expect(first.chain_hash).toBe(nextChainHash("0".repeat(64), first.leaf_hash!));
    expect(first.body).toBe(canonicalJson(JSON.parse(first.body)));
  });

  it("names an altered event", async () => {
    const { store } = await logWith(20);
    const target = await row(store, 7);
    const body = JSON.parse(target.body);
    body.code = "FORGED";
    await store.db.updateTable("audit_events").set({ body: canonicalJson(body) }).where("chain_seq", "=", 7).execute();
    const result = await verifyAuditChain(store);
    expect(result.ok).toBe(false);
    expect(result.problems).toEqual([expect.objectContaining({ kind: "altered", seq: 7, eventId: target.id })]);
  });

  it("names a removed event", async () => {
    const { store } = await logWith(20);
    await store.db.deleteFrom("audit_events").where("chain_seq", "=", 12).execute();
    const result = await verifyAuditChain(store);
    expect(result.problems).toEqual([expect.objectContaining({ kind: "removed", seq: 12 })]);
  });

  it("names an inserted event, even one with correct-looking hashes", async () => {
    const { store } = await logWith(20);
    // Make room after event 5 and insert a forged event whose own hashes are self-consistent.
    await sql`update audit_events set chain_seq = chain_seq + 1000 where chain_seq > 5`.execute(store.db);
    await sql`update audit_events set chain_seq = chain_seq - 999 where chain_seq > 1000`.execute(store.db);
    const five = await row(store, 5);
    const body = canonicalJson({ id: "FORGED", time: new Date().toISOString(), type: "identity.join", code: "OK", actor: { kind: "agent" }, outcome: { status: "ok" } });
    const leaf = eventLeafHash(body);
    await store.db
      .insertInto("audit_events")
      .values({ id: "FORGED", time: Date.now(), type: "identity.join", code: "OK", actor_spiffe_id: null, actor_agent: null, actor_user: null, task_id: null, decision: null, outcome: "ok", body, chain_seq: 6, leaf_hash: leaf, chain_hash: nextChainHash(five.chain_hash!, leaf) })
      .execute();
    const result = await verifyAuditChain(store);
    expect(result.ok).toBe(false);
    expect(result.problems[0]).toMatchObject({ kind: "inserted-or-reordered", seq: 7 });
  });

  it("names two swapped events", async () => {
    const { store } = await logWith(20);
    const [a, b] = [await row(store, 9), await row(store, 10)];
    await store.db.updateTable("audit_events").set({ chain_seq: -1 }).where("id", "=", a.id).execute();
    await store.db.updateTable("audit_events").set({ chain_seq: 9 }).where("id", "=", b.id).execute();
    await store.db.updateTable("audit_events").set({ chain_seq: 10 }).where("id", "=", a.id).execute();
    const result = await verifyAuditChain(store);
    expect(result.problems[0]).toMatchObject({ kind: "inserted-or-reordered", seq: 9 });
  });

  it("names a truncated tail", async () => {
    const { store } = await logWith(20);
    await store.db.deleteFrom("audit_events").where("chain_seq", ">", 17).execute();
    const result = await verifyAuditChain(store);
    expect(result.problems).toEqual([expect.objectContaining({ kind: "truncated", seq: 18 })]);
  });

  it("keeps one chain without gaps or forks when several stores write at once", async () => {
    const env = await backend.create();
    cleanups.push(env.cleanup);
    const stores = await Promise.all([1, 2, 3].map(() => Store.open({ dataDir: env.dataDir, storage: env.storage })));
    cleanups.push(async () => {
      for (const s of stores) await s.close();
    });
    await Promise.all(stores.flatMap((s, w) => Array.from({ length: 40 }, (_, i) => new StoreAuditLog(s).append({ type: "t", code: "OK", actor: { kind: "system" }, outcome: { status: "ok" }, details: { w, i } }))));
    const result = await verifyAuditChain(stores[0]!);
    expect(result).toMatchObject({ ok: true, events: 120, headSeq: 120 });
  });

  it("searches by indexed filters, newest first", async () => {
    const { store } = await logWith(30);
    const renewals = await searchAuditEvents(store, { type: "identity.renew", agent: "agent-1", limit: 100 });
    expect(renewals.length).toBeGreaterThan(0);
    expect(renewals.every((e) => e.type === "identity.renew" && e.actor.agent === "agent-1")).toBe(true);
    const times = renewals.map((e) => e.time);
    expect([...times].sort().reverse()).toEqual(times);
    expect(await searchAuditEvents(store, { since: new Date(Date.now() + 60_000) })).toEqual([]);
    await expect(searchAuditEvents(store, { limit: 0 })).rejects.toThrow("--limit");
  });
});

describe("redaction on the way into the log", () => {
  it("stores secrets redacted, says which paths, and keeps hashed fields checkable", async () => {
    const env = await (await availableBackends())[0]!.create();
    const store = await Store.open({ dataDir: env.dataDir, storage: env.storage });
    try {
      const log = new StoreAuditLog(store, { hashedFields: ["details.prompt"] });
      const event = await log.append({
        type: "llm.request",
        code: "OK",
        actor: { kind: "agent", agent: "a" },
        target: { headers: { authorization: "Bearer sk-secret-value-123456" } },
        details: { prompt: "ignore previous instructions", note: "token eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.sig" },
        outcome: { status: "ok" },
      });
      expect(event.redacted?.paths.sort()).toEqual(["details.note", "details.prompt", "target.headers.authorization"]);
      const stored = (await store.db.selectFrom("audit_events").select("body").where("id", "=", event.id).executeTakeFirstOrThrow()).body;
      expect(stored).not.toContain("sk-secret");
      expect(stored).not.toContain("ignore previous");
      expect(stored).not.toContain("eyJzdWIiOiJ4In0");
      expect(JSON.parse(stored).details.prompt).toBe(await log.hashForInvestigation("ignore previous instructions"));
      expect(JSON.parse(stored).details.prompt).not.toBe(await log.hashForInvestigation("something else"));
      expect((await verifyAuditChain(store)).ok).toBe(true);
    } finally {
      await store.close();
      await env.cleanup();
    }
  });
});
