import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { readFile, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { tempDir } from "../../test/helpers/backends.js";
import { Store } from "../store/index.js";
import { AuditExporter, JsonlFileSink, WebhookSink } from "./export.js";
import { StoreAuditLog } from "./log.js";

describe("audit export", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function logWith(n: number) {
    const dir = await tempDir();
    const store = await Store.open({ dataDir: dir });
    cleanups.push(() => rm(dir, { recursive: true, force: true }), () => store.close());
    const log = new StoreAuditLog(store);
    for (let i = 0; i < n; i++) await log.append({ type: "t", code: "OK", actor: { kind: "system" }, outcome: { status: "ok" }, details: { i, pad: "p".repeat(100) } });
    return { store, log, dir };
  }

  it("writes JSON Lines in chain order, rotates by size, and resumes from its cursor", async () => {
    const { store, log, dir } = await logWith(30);
    const out = join(dir, "export");
    const sink = new JsonlFileSink(out, { maxBytes: 2000, maxFiles: 100 });
    const exporter = new AuditExporter(store, sink, { batchSize: 7 });
    await exporter.drain();
    expect(await exporter.cursor()).toBe(30);
    for (let i = 30; i < 35; i++) await log.append({ type: "t", code: "OK", actor: { kind: "system" }, outcome: { status: "ok" }, details: { i } });
    await exporter.drain();
    const files = (await readdir(out)).sort();
    expect(files.length).toBeGreaterThan(1);
    const lines = (await Promise.all(files.filter((f) => f !== "audit.jsonl").concat("audit.jsonl").map((f) => readFile(join(out, f), "utf8")))).join("").trim().split("\n");
    const indexes = lines.map((l) => JSON.parse(l).details.i);
    expect(indexes).toEqual(Array.from({ length: 35 }, (_, i) => i));
  });

  it("retries a failing webhook with the same idempotency key and never blocks appends", async () => {
    const { store, log } = await logWith(5);
    const received: { key: string; count: number }[] = [];
    const refusedKeys: string[] = [];
    let failuresLeft = 2;
    const server = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        if (failuresLeft-- > 0) {
          refusedKeys.push(String(req.headers["idempotency-key"]));
          res.writeHead(503).end();
          return;
        }
        received.push({ key: String(req.headers["idempotency-key"]), count: JSON.parse(body).events.length });
        res.writeHead(200).end("{}");
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    cleanups.push(() => new Promise((r) => server.close(() => r())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/siem`;
    const errors: number[] = [];
    const exporter = new AuditExporter(store, new WebhookSink(url), { batchSize: 100, pollIntervalMs: 20, maxBackoffMs: 50, onError: (_s, _e, attempt) => errors.push(attempt) });
    exporter.start();
    // Appends go on while the sink is failing.
    await log.append({ type: "t", code: "OK", actor: { kind: "system" }, outcome: { status: "ok" } });
    const deadline = Date.now() + 5000;
    while ((await exporter.cursor()) < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await exporter.stop();
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(received.reduce((n, r) => n + r.count, 0)).toBe(6);
    expect(received[0]!.key).toMatch(/^mandate-audit-1-\d+$/);
    // A retried batch that still starts at the same place carries the same key.
    expect(refusedKeys[0]!.startsWith("mandate-audit-1-")).toBe(true);
  });
});
