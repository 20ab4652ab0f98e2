import { chmod, rm } from "node:fs/promises";
import { afterEach, describe, expect, it } from "vitest";
import { tempDir } from "../../test/helpers/backends.js";
import { MandateError } from "../errors/index.js";
import { Store } from "../store/index.js";
import { auditedAction } from "./audited-action.js";
import { StoreAuditLog } from "./log.js";
import { searchAuditEvents } from "./search.js";

describe("auditedAction", () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  async function setup() {
    const dir = await tempDir();
    const store = await Store.open({ dataDir: dir, fileCheckIntervalMs: 50 });
    cleanups.push(() => rm(dir, { recursive: true, force: true }), () => store.close());
    return { store, log: new StoreAuditLog(store) };
  }

  const intent = { type: "mcp.tool.call", code: "", actor: { kind: "agent" as const, agent: "a" }, target: { tool: "read_pods" }, outcome: { status: "ok" as const } };

  it("records the intent before acting and a linked outcome after", async () => {
    const { store, log } = await setup();
    let seenBeforeAction = 0;
    const result = await auditedAction(log, intent, async () => {
      seenBeforeAction = (await searchAuditEvents(store, { type: "mcp.tool.call" })).length;
      return 42;
    });
    expect(result).toBe(42);
    expect(seenBeforeAction).toBe(1);
    const [outcome, recordedIntent] = await searchAuditEvents(store, { type: "mcp.tool.call" });
    expect(recordedIntent!.code).toBe("INTENT");
    expect(outcome!.code).toBe("OK");
    expect(outcome!.correlation?.parentEvent).toBe(recordedIntent!.id);
  });

  it("records a failed action's error", async () => {
    const { store, log } = await setup();
    await expect(auditedAction(log, intent, async () => Promise.reject(new MandateError("PERMISSION_DENIED", "nope")))).rejects.toThrow("nope");
    const [outcome] = await searchAuditEvents(store, { type: "mcp.tool.call" });
    expect(outcome).toMatchObject({ code: "PERMISSION_DENIED", outcome: { status: "error" } });
  });

  it("never acts when the intent cannot be made durable", async () => {
    const { store, log } = await setup();
    await chmod(store.location, 0o444);
    await store.checkHealth();
    let acted = false;
    await expect(
      auditedAction(log, intent, async () => {
        acted = true;
      }),
    ).rejects.toMatchObject({ code: "STORE_READ_ONLY" });
    expect(acted).toBe(false);
    await chmod(store.location, 0o644);
  });
});
