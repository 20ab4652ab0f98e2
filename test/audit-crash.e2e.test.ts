import { spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { verifyAuditChain } from "../src/audit/index.js";
import { Store } from "../src/store/index.js";
import { tempDir } from "./helpers/backends.js";

const DIST = fileURLToPath(new URL("../dist/src/", import.meta.url));

/** Runs writers in a child process that prints each event id once its append is acknowledged. */
const WRITER = `
const { Store } = await import(${JSON.stringify(`${DIST}store/index.js`)});
const { StoreAuditLog } = await import(${JSON.stringify(`${DIST}audit/index.js`)});
const store = await Store.open({ dataDir: process.argv[1] });
const log = new StoreAuditLog(store);
process.stdout.write("READY\\n");
let n = 0;
await Promise.all(Array.from({ length: 20 }, async (_, w) => {
  for (;;) {
    const event = await log.append({ type: "crash.test", code: "OK", actor: { kind: "system" }, outcome: { status: "ok" }, details: { w, n: n++, pad: "x".repeat(200) } });
    process.stdout.write(event.id + "\\n");
  }
}));
`;

describe("audit crash safety", () => {
  it("keeps every acknowledged event and a verifiable chain after SIGKILL under load", async () => {
    const dataDir = await tempDir();
    try {
      const child = spawn(process.execPath, ["--input-type=module", "-e", WRITER, dataDir], { stdio: ["ignore", "pipe", "pipe"] });
      const acknowledged: string[] = [];
      let buffer = "";
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      await new Promise<void>((resolve, reject) => {
        child.stdout.on("data", (chunk: Buffer) => {
          buffer += chunk.toString();
          const lines = buffer.split("\n");
          buffer = lines.pop()!;
          for (const line of lines) if (line && line !== "READY") acknowledged.push(line);
          if (acknowledged.length >= 2000) resolve();
        });
        child.once("exit", (code) => reject(new Error(`writer exited early (${code}): ${stderr}`)));
        setTimeout(() => reject(new Error(`too slow: ${acknowledged.length} events acknowledged; ${stderr}`)), 20_000);
      });
      child.kill("SIGKILL");
      await new Promise((r) => child.once("exit", r));

      const store = await Store.open({ dataDir });
      try {
        const verification = await verifyAuditChain(store);
        expect(verification.problems).toEqual([]);
        expect(verification.events).toBeGreaterThanOrEqual(acknowledged.length);
        const present = new Set((await store.db.selectFrom("audit_events").select("id").execute()).map((r) => r.id));
        const missing = acknowledged.filter((id) => !present.has(id));
        expect(missing).toEqual([]);
      } finally {
        await store.close();
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
