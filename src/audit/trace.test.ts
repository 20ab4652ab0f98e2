import { afterEach, describe, expect, it } from "vitest";
import { availableBackends } from "../../test/helpers/backends.js";
import { Store } from "../store/index.js";
import { StoreAuditLog } from "./log.js";
import { formatTrace, traceAudit } from "./trace.js";

const backends = await availableBackends();

describe.each(backends)("audit trace on $name", (backend) => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  it("reconstructs a task's story as a tree in time order", async () => {
    const env = await backend.create();
    const store = await Store.open({ dataDir: env.dataDir, storage: env.storage });
    cleanups.push(env.cleanup, () => store.close());
    const log = new StoreAuditLog(store);
    const delegation = { id: "dlg-1", delegator: "alice", task: "investigate-checkout-deploy" };
    const created = await log.append({ type: "delegation.create", code: "OK", actor: { kind: "user", user: "alice" }, delegation, outcome: { status: "ok" } });
    const call = await log.append({
      type: "mcp.tool.call",
      code: "PERMISSION_DENIED",
      actor: { kind: "agent", agent: "deploy-auditor" },
      delegation,
      correlation: { session: "sess-9", parentEvent: created.id },
      target: { server: "k8s", tool: "kubectl_exec" },
      decision: { allow: false, reasons: ["denied by delegation: mcp:*/kubectl_exec"] },
      outcome: { status: "error", error: "PERMISSION_DENIED" },
    });
    await log.append({ type: "alert.fire", code: "OK", actor: { kind: "system" }, correlation: { task: "investigate-checkout-deploy", parentEvent: call.id }, outcome: { status: "ok" } });
    await log.append({ type: "identity.renew", code: "OK", actor: { kind: "agent", agent: "someone-else" }, outcome: { status: "ok" } });

    const byTask = await traceAudit(store, "investigate-checkout-deploy");
    expect(byTask.events).toBe(3);
    expect(byTask.roots).toHaveLength(1);
    expect(byTask.roots[0]!.event.type).toBe("delegation.create");
    expect(byTask.roots[0]!.children[0]!.event.type).toBe("mcp.tool.call");
    expect(byTask.roots[0]!.children[0]!.children[0]!.event.type).toBe("alert.fire");
    const text = formatTrace(byTask);
    expect(text).toContain("DENY (denied by delegation: mcp:*/kubectl_exec)");
    expect(text.indexOf("delegation.create")).toBeLessThan(text.indexOf("mcp.tool.call"));
    expect((await traceAudit(store, "dlg-1")).events).toBe(2);
    expect((await traceAudit(store, "sess-9")).events).toBe(1);
    expect((await traceAudit(store, "nothing")).events).toBe(0);
  });
});
