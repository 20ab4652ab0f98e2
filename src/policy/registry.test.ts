import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Store } from "../store/index.js";
import { createPolicyEngine } from "./create.js";
import { POLICY_REVISION_KEY, RoleRegistry } from "./registry.js";
import { accessRequest, agent, mcp } from "./testing.js";

const READER = "kind: role\nname: reader\nallow:\n  mcp:\n    tools: [\"read_*\"]\n";
const bot = agent("bot", ["reader", "other"]);

describe("RoleRegistry", () => {
  let dir: string;
  let store: Store;
  let registry: RoleRegistry;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "mandate-roles-"));
    store = await Store.open({ dataDir: dir });
    registry = new RoleRegistry(store);
    await registry.refresh(true);
  });
  afterEach(async () => {
    registry.stop();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("applies, reports unchanged re-applies without bumping the revision, and removes", async () => {
    const engine = createPolicyEngine({ source: registry });
    expect(engine.authorize(accessRequest(bot, mcp("k8s", "read_logs"))).allow).toBe(false);
    expect((await registry.apply(READER, "admin")).result).toEqual({ created: ["reader"], updated: [], unchanged: [] });
    const revision = await store.getMeta(POLICY_REVISION_KEY);
    expect(engine.authorize(accessRequest(bot, mcp("k8s", "read_logs"))).allow).toBe(true);
    expect((await registry.apply(READER, "admin")).result.unchanged).toEqual(["reader"]);
    expect(await store.getMeta(POLICY_REVISION_KEY)).toBe(revision);
    expect((await registry.apply(READER.replace("read_*", "get_*"), "admin")).result.updated).toEqual(["reader"]);
    expect(engine.authorize(accessRequest(bot, mcp("k8s", "read_logs"))).allow).toBe(false);
    await registry.remove("reader");
    await expect(registry.get("reader")).rejects.toThrow(/no role named reader/);
  });

  it("writes nothing when one document of an apply is invalid", async () => {
    await expect(registry.apply(`${READER}---\nkind: role\nname: other\nallow:\n  mcp:\n    tools: ["a***"]\n`, "admin")).rejects.toThrow(/POLICY_INVALID|invalid glob/);
    expect(await registry.list()).toEqual([]);
    expect(await store.getMeta(POLICY_REVISION_KEY)).toBeUndefined();
  });

  it("a stored role that no longer compiles denies everything to its holders", async () => {
    await registry.apply(READER, "admin");
    await store.db.insertInto("roles").values({ name: "other", source: "kind: role\nname: other\nallow:\n  mcp:\n    tools: [\"a***\"]\n", created_at: 0, updated_at: 0, updated_by: "test" }).execute();
    await registry.refresh(true);
    expect(registry.problems().get("other")).toMatch(/invalid glob/);
    const decision = createPolicyEngine({ source: registry }).authorize(accessRequest(bot, mcp("k8s", "read_logs")));
    expect(decision).toMatchObject({ allow: false, deniedBy: "agent_roles" });
    expect(decision.reasons[0]).toMatch(/role other .* denies .*does not compile/);
    await registry.refresh(true);
    expect(registry.problems().has("other")).toBe(true);
  });

  it("keeps the runtime list: default allow, allow entries narrow, deny entries win, set replaces", async () => {
    await registry.apply(READER.replace("name: reader", "name: other"), "admin");
    const engine = createPolicyEngine({ source: registry });
    const read = accessRequest(bot, mcp("k8s", "read_logs"));
    expect(engine.authorize(read).allow).toBe(true);
    await registry.addRuntimeEntry({ effect: "allow", pattern: "llm:**", by: "admin" });
    expect(engine.authorize(read).deniedBy).toBe("runtime");
    await expect(registry.addRuntimeEntry({ effect: "allow", pattern: "llm:**", by: "admin" })).rejects.toThrow(/already/);
    await registry.setRuntimeList({ allow: ["mcp:k8s/**"], deny: [] }, "admin");
    expect(engine.authorize(read).allow).toBe(true);
    await registry.addRuntimeEntry({ effect: "deny", pattern: "mcp:**", reason: "incident", by: "admin" });
    expect(engine.authorize(read).deniedBy).toBe("runtime");
    await registry.removeRuntimeEntry("deny", "mcp:**");
    await expect(registry.removeRuntimeEntry("deny", "mcp:**")).rejects.toThrow(/not on the runtime deny list/);
    expect((await registry.runtimeList()).map((e) => `${e.effect} ${e.pattern}`)).toEqual(["allow mcp:k8s/**"]);
  });

  it("reports a stale view when the store cannot be read", async () => {
    let t = Date.now();
    const timed = new RoleRegistry(store, () => t, 5000);
    await timed.start(60_000);
    expect(timed.stale(t)).toBeUndefined();
    t += 6000;
    expect(timed.stale(t)).toMatch(/could not be refreshed for 6s/);
    timed.stop();
  });
});
