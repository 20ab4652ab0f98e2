import fc from "fast-check";
import { beforeAll, describe, expect, test } from "vitest";
import { ClassificationCache, UnparseableStatement, classifySql, integerFreeKey, loadParser } from "./classify.js";

beforeAll(async () => {
  await loadParser();
});

const CASES: [string, string[], string[], string[]][] = [
  ["SELECT * FROM orders", ["select"], ["orders"], []],
  ["SELECT * FROM s.orders o JOIN items i ON true", ["select"], ["items", "s.orders"], []],
  ["WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", ["delete", "select"], ["t"], []],
  ["SELECT 1; DROP TABLE t", ["ddl", "select"], ["t"], []],
  ["INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET id = 2", ["insert", "update"], ["t"], []],
  ["SELECT * FROM t FOR UPDATE", ["select", "update"], ["t"], []],
  ["COPY t TO PROGRAM 'id'", ["copy", "function"], ["t"], ["COPY PROGRAM"]],
  ["COPY t FROM STDIN", ["copy", "insert"], ["t"], []],
  ["SELECT pg_terminate_backend(1)", ["function", "select"], [], ["pg_terminate_backend"]],
  ["SELECT count(*), lower(name) FROM t", ["select"], ["t"], []],
  ["SELECT myschema.count(*) FROM t", ["function", "select"], ["t"], ["myschema.count"]],
  ["SET ROLE admin", ["dcl"], [], []],
  ["RESET ALL", ["dcl"], [], []],
  ["SET search_path = x", ["session"], [], []],
  ["BEGIN", ["transaction"], [], []],
  ["DO $$ BEGIN END $$", ["function"], [], ["DO"]],
  ["TRUNCATE t", ["delete"], ["t"], []],
  ["GRANT SELECT ON t TO u", ["dcl"], ["t"], []],
  ["CREATE INDEX i ON t (a)", ["ddl"], ["t"], []],
  ["MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (s.id)", ["delete", "insert", "update"], ["s", "t"], []],
  ["LOCK t", ["other"], ["t"], []],
];

describe("classification", () => {
  test.each(CASES)("%s", (sql, statements, tables, functions) => {
    const c = classifySql(sql);
    expect(c.statements).toEqual(expect.arrayContaining(statements));
    expect(c.statements.filter((s) => !statements.includes(s))).toEqual([]);
    expect(c.tables).toEqual(tables);
    expect(c.functions).toEqual(functions);
  });

  test("PREPARE is classified by what it prepares; EXECUTE names what it runs", () => {
    const p = classifySql("PREPARE p AS DELETE FROM t");
    expect(p.statements).toContain("delete");
    expect(p.prepares[0]).toMatchObject({ name: "p", classification: { statements: ["delete"] } });
    expect(classifySql("EXECUTE p").executes).toEqual(["p"]);
    expect(classifySql("DEALLOCATE ALL").deallocates).toEqual(["*"]);
  });

  test("literals are redacted", () => {
    expect(classifySql("SELECT * FROM users WHERE email = 'alice@example.com' AND id = 42").redacted).toBe("SELECT * FROM users WHERE email = $1 AND id = $2");
  });

  test("unparseable text throws", () => {
    expect(() => classifySql("SELEC 1")).toThrow(UnparseableStatement);
  });

  test("arbitrary text classifies or throws UnparseableStatement, never anything else", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 80 }), fc.constantFrom("SELECT ", "DELETE FROM ", "WITH x AS (", ") ", "; ", "'", "$$", "/*", "*/", "--", "t", "1").chain((s) => fc.array(fc.constant(s), { maxLength: 6 }).map((a) => a.join("")))), (text) => {
        try {
          const c = classifySql(text);
          expect(c.count).toBeGreaterThanOrEqual(0);
        } catch (error) {
          expect(error).toBeInstanceOf(UnparseableStatement);
        }
      }),
      { numRuns: 300 },
    );
  });

  test("constants never change what a statement is, and the cache agrees with a fresh parse", () => {
    const cache = new ClassificationCache(50);
    const templates = ["SELECT * FROM t WHERE id = %", "DELETE FROM t WHERE id = %", "UPDATE t SET a = % WHERE id = %", "SELECT pg_sleep(%)", "INSERT INTO t VALUES (%)", "SELECT % ; DROP TABLE t"];
    const literal = fc.oneof(fc.integer().map(String), fc.string({ maxLength: 10 }).filter((s) => !s.includes("\0")).map((s) => `'${s.replace(/'/g, "''")}'`), fc.double({ noNaN: true, noDefaultInfinity: true }).map((d) => String(Math.abs(d))));
    fc.assert(
      fc.property(fc.constantFrom(...templates), fc.array(literal, { minLength: 2, maxLength: 2 }), (template, [a, b]) => {
        let i = 0;
        const text = template.replace(/%/g, () => [a!, b!][i++]!);
        const fresh = classifySql(text);
        const cached = cache.classify(text);
        expect(cached.statements).toEqual(fresh.statements);
        expect(cached.tables).toEqual(fresh.tables);
        expect(cached.functions).toEqual(fresh.functions);
        // No literal value survives redaction.
        if (a!.startsWith("'") && a!.length > 4) expect(fresh.redacted).not.toContain(a);
      }),
      { numRuns: 300 },
    );
  });

  test("texts that differ only in integers share a classification, the same redacted text, and never let unparseable text through", () => {
    const cache = new ClassificationCache(50);
    const templates = ["SELECT abalance FROM pgbench_accounts WHERE aid = %;", "SELECT * FROM t ORDER BY % LIMIT %", "DELETE FROM t WHERE id = %", "SELECT %x% FROM t", "SELECT %.% FROM t", "SELECT % e% FROM t", "SELECT t% FROM t%", "FETCH % FROM c", "SELECT %%, -% FROM t WHERE a<%"];
    const integer = fc.oneof(fc.nat().map(String), fc.constantFrom("0", "00", "1", "99999999999999999999999"));
    fc.assert(
      fc.property(fc.constantFrom(...templates), fc.array(integer, { minLength: 3, maxLength: 3 }), fc.array(integer, { minLength: 3, maxLength: 3 }), (template, first, second) => {
        const fill = (values: string[]) => {
          let i = 0;
          return template.replace(/%/g, () => values[i++ % values.length]!);
        };
        for (const text of [fill(first), fill(second)]) {
          let fresh;
          try {
            fresh = classifySql(text);
          } catch (error) {
            expect(error).toBeInstanceOf(UnparseableStatement);
            expect(() => cache.classify(text)).toThrow(UnparseableStatement);
            continue;
          }
          const cached = cache.classify(text);
          expect(cached.statements).toEqual(fresh.statements);
          expect(cached.tables).toEqual(fresh.tables);
          expect(cached.functions).toEqual(fresh.functions);
          expect(cached.count).toEqual(fresh.count);
          expect(cached.redacted).toEqual(fresh.redacted);
        }
      }),
      { numRuns: 300 },
    );
    expect(integerFreeKey("SELECT 'x' FROM t WHERE id = 1")).toBeUndefined();
    expect(integerFreeKey("SELECT 1 -- x")).toBeUndefined();
    expect(integerFreeKey("SELECT abalance FROM pgbench_accounts WHERE aid = 42;")).toBe("SELECT abalance FROM pgbench_accounts WHERE aid = ?;");
  });
});
