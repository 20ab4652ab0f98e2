import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/server/index.js";
import { usePolicy } from "./helpers/access.js";
import { type TestAgent, joinTestAgent } from "./helpers/agent.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { eventually } from "./helpers/mcp.js";
import { freshPostgresDatabase, postgresBaseUrl } from "./helpers/postgres.js";
import { addTestUser, loginTestUser } from "./helpers/users.js";

const base = await postgresBaseUrl();

describe.skipIf(!base)("delegations across two control planes on one PostgreSQL", () => {
  let a: ControlPlane;
  let b: ControlPlane;
  let agent: TestAgent;
  let alice: string;
  let drop: () => Promise<void>;
  const dirs: string[] = [];

  beforeAll(async () => {
    const db = await freshPostgresDatabase(base!);
    drop = db.drop;
    const [dirA, dirB, home] = [await tempDir(), await tempDir(), await tempDir("mandate-people-")];
    dirs.push(dirA, dirB, home);
    [a, b] = await Promise.all([
      startTestControlPlane({ dataDir: dirA, storage: db.url, trustDomain: "cluster.test", lockPollMs: 200 }),
      startTestControlPlane({ dataDir: dirB, storage: db.url, trustDomain: "cluster.test", lockPollMs: 200 }),
    ]);
    await usePolicy(a);
    await usePolicy(b);
    const user = await addTestUser(a.dataDir, "alice", ["sre"]);
    alice = join(home, "alice.json");
    expect((await loginTestUser(a.url, a.context.authority.caPin, user, alice)).code).toBe(0);
    agent = await joinTestAgent(a, "deploy-auditor", { roles: ["k8s-agent"] });
  }, 120_000);
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await drop?.();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("a grant made on A is usable on B; its revocation on A is enforced by B within a second", async () => {
    const created = await mandate("delegate", "--identity", alice, "--agent", "deploy-auditor", "--task", "cluster-task", "--ttl", "10m", "--allow", "mcp:k8s/read_*", "--format", "json");
    expect(created.code, created.stderr).toBe(0);
    const id = created.json().id;
    // A grant made on A a moment ago can be exchanged at B at once.
    const atB = await mandate("delegations", "token", "--task", "cluster-task", "--credentials", agent.credentialDir, "--auth-server", b.url);
    expect(atB.code, atB.stderr).toBe(0);
    // The token is issued by A and verified by B: one signing key per trust domain, shared through the store.
    const token = (await mandate("delegations", "token", "--task", "cluster-task", "--credentials", agent.credentialDir)).stdout.trim();
    const ask = () =>
      b.context.access!.authorize({
        caller: { kind: "agent", spiffeId: agent.spiffeId, agent: "deploy-auditor", via: "mtls", notAfter: agent.credentials.notAfter },
        delegationToken: token,
        action: "mcp.tools/call",
        resource: { kind: "mcp", server: "k8s", item: "tool", name: "read_logs" },
      });
    await eventually(async () => expect((await ask()).allow).toBe(true), 5000);

    const started = Date.now();
    const revoked = await mandate("delegations", "revoke", id, "--identity", alice, "--reason", "done");
    expect(revoked.code, revoked.stderr).toBe(0);
    let decision = await ask();
    while (decision.allow && Date.now() - started < 5000) {
      await new Promise((r) => setTimeout(r, 20));
      decision = await ask();
    }
    const seenAfterMs = Date.now() - started;
    expect(decision.allow).toBe(false);
    expect(decision.reasons[0]).toMatch(new RegExp(`delegation ${id} was revoked`));
    expect(seenAfterMs).toBeLessThan(1000);
    console.log(`revocation on A enforced by B after ${seenAfterMs} ms`);
  }, 60_000);

  it("an approval given on one plane is consumed exactly once across both", async () => {
    const created = await mandate("delegate", "--identity", alice, "--agent", "deploy-auditor", "--task", "cluster-approve", "--ttl", "10m", "--allow", "mcp:k8s/rollback", "--require-approval", "mcp:k8s/rollback", "--format", "json");
    expect(created.code, created.stderr).toBe(0);
    const token = (await mandate("delegations", "token", "--task", "cluster-approve", "--credentials", agent.credentialDir)).stdout.trim();
    const ask = (plane: ControlPlane) =>
      plane.context.access!.authorize({
        caller: { kind: "agent", spiffeId: agent.spiffeId, agent: "deploy-auditor", via: "mtls", notAfter: agent.credentials.notAfter },
        delegationToken: token,
        action: "mcp.tools/call",
        resource: { kind: "mcp", server: "k8s", item: "tool", name: "rollback" },
        context: { args: { deployment: "checkout" } },
      });
    const pending = await eventually(async () => {
      const d = await ask(b);
      expect(d.accessRequest?.status).toBe("pending");
      return d;
    }, 5000);
    expect((await ask(a)).accessRequest?.id).toBe(pending.accessRequest!.id);
    const approved = await mandate("requests", "approve", pending.accessRequest!.id, "--identity", alice);
    expect(approved.code, approved.stderr).toBe(0);
    const results = await Promise.all([ask(a), ask(b), ask(a), ask(b)]);
    expect(results.filter((r) => r.allow)).toHaveLength(1);
  }, 60_000);
});
