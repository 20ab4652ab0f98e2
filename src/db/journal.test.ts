import { mkdtemp, readdir, appendFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import type { AuditEvent, AuditEventInput, AuditLog } from "../audit/index.js";
import { DbAuditJournal } from "./journal.js";

function memoryLog(): AuditLog & { events: AuditEventInput[] } {
  const events: AuditEventInput[] = [];
  return {
    events,
    async append(event) {
      events.push(event);
      return { ...event, id: String(events.length), time: "" } as AuditEvent;
    },
    appendDeferred(event) {
      return this.append(event);
    },
    async flushDeferred() {},
    async appendInTransaction() {
      throw new Error("unused");
    },
  };
}

const intent = (statement: string): AuditEventInput => ({ type: "db.query", code: "INTENT", actor: { kind: "agent", agent: "a" }, outcome: { status: "ok" }, details: { statement } });

describe("DbAuditJournal", () => {
  test("an intent is durable before it resolves; its outcome is folded as one event", async () => {
    const dir = await mkdtemp(join(tmpdir(), "journal-"));
    const log = memoryLog();
    const journal = await DbAuditJournal.open(dir, log, (e) => {
      throw e;
    });
    await journal.intent("1", intent("SELECT $1"));
    journal.complete("1", { code: "OK", outcome: { status: "ok", latencyMs: 1 }, details: { rows: 3 } });
    await journal.flush();
    expect(log.events).toEqual([expect.objectContaining({ code: "OK", details: { statement: "SELECT $1", rows: 3 } })]);
    await journal.close();
    expect(await readdir(dir)).toEqual([]);
  });

  test("concurrent intents share fsyncs", async () => {
    const dir = await mkdtemp(join(tmpdir(), "journal-"));
    const journal = await DbAuditJournal.open(dir, memoryLog(), () => undefined);
    await Promise.all(Array.from({ length: 200 }, (_, i) => journal.intent(String(i), intent(`q${i}`))));
    expect(journal.stats.intents).toBe(200);
    expect(journal.stats.batches).toBeLessThan(50);
    await journal.close();
  });

  test("after a crash, the next start folds what was left: completed as they were, open intents as unfinished", async () => {
    const dir = await mkdtemp(join(tmpdir(), "journal-"));
    const first = await DbAuditJournal.open(dir, { append: () => new Promise(() => undefined), appendDeferred: () => new Promise(() => undefined), flushDeferred: async () => undefined, appendInTransaction: async () => ({}) as never }, () => undefined);
    await first.intent("done", intent("SELECT done"));
    first.complete("done", { code: "OK", outcome: { status: "ok" }, details: { rows: 1 } });
    await first.intent("running", intent("SELECT running"));
    await new Promise((r) => setTimeout(r, 50));
    // A torn last line, as a crash mid-write leaves.
    const [segment] = await readdir(dir);
    await appendFile(join(dir, segment!), '{"t":"i","id":"torn","e":{"ty');
    const log = memoryLog();
    const second = await DbAuditJournal.open(dir, log, () => undefined);
    const byStatement = Object.fromEntries(log.events.map((e) => [e.details?.statement, e]));
    expect(byStatement["SELECT done"]).toMatchObject({ code: "OK", details: { rows: 1, recovered: true } });
    expect(byStatement["SELECT running"]).toMatchObject({ code: "UNFINISHED", outcome: { status: "error" } });
    expect(log.events).toHaveLength(2);
    await second.close();
  });
});

test("a connection's statements fold into one batch event that keeps each statement", async () => {
  const { foldEvents } = await import("./journal.js");
  const ran = (statement: string, rows: number, session = "s1"): AuditEventInput => ({
    type: "db.query",
    code: "OK",
    actor: { kind: "agent", agent: "a" },
    correlation: { session },
    decision: { allow: true, reasons: ["allowed by role r"] },
    outcome: { status: "ok", latencyMs: 1 },
    details: { statement, rows, statements: ["select"], tables: ["t"], functions: [], protocol: "simple", statementCount: 1 },
  });
  const refused: AuditEventInput = { ...ran("DROP TABLE t", 0), code: "PERMISSION_DENIED", decision: { allow: false, reasons: ["no"] } };
  const folded = foldEvents([ran("SELECT $1", 1), ran("SELECT $1", 2), refused, ran("SELECT 2", 1, "s2")]);
  expect(folded).toHaveLength(3);
  const batch = folded.find((e) => e.type === "db.query.batch")!;
  expect(batch.details).toEqual({
    count: 2,
    shapes: [{ statements: ["select"], tables: ["t"], functions: [], protocol: "simple", statementCount: 1, reasons: ["allowed by role r"] }],
    queries: [
      { statement: "SELECT $1", shape: 0, rows: 1, code: "OK", latencyMs: 1 },
      { statement: "SELECT $1", shape: 0, rows: 2, code: "OK", latencyMs: 1 },
    ],
  });
  expect(folded.filter((e) => e.type === "db.query").map((e) => e.code).sort()).toEqual(["OK", "PERMISSION_DENIED"]);
});
