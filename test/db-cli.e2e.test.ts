import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { startDbBridge } from "../src/db/index.js";
import type { ControlPlane } from "../src/server/index.js";
import { joinTestAgent, type TestAgent } from "./helpers/agent.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { classGate, dbPort, psql } from "./helpers/db.js";

let plane: ControlPlane;
let reader: TestAgent;
const secret = "not-a-real-password-7f3a";

beforeAll(async () => {
  plane = await startTestControlPlane({ accessGate: classGate(), db: { listen: "127.0.0.1:0", env: { ...process.env, ORDERS_PW: secret } } });
  reader = await joinTestAgent(plane, "reader-cli");
}, 60_000);

afterAll(async () => {
  await plane?.close();
});

describe("mandate db", () => {
  test("add, ls, show, rm; passwords are referenced, never shown or audited", async () => {
    const dir = await mkdtemp(join(tmpdir(), "mandate-db-"));
    const pwFile = join(dir, "readonly.pw");
    await writeFile(pwFile, `${secret}\n`, { mode: 0o600 });
    const add = await mandate("db", "add", "orders", "--uri", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable", "--db-user", `readonly=file:${pwFile}`, "--db-user", "trusted", "--labels", "env=prod", "--data-dir", plane.dataDir, "--format", "json");
    expect(add.stderr).toBe("");
    expect(add.json()).toMatchObject({ name: "orders", host: "127.0.0.1", port: 5432, database: "test", users: { postgres: null, readonly: `file:${pwFile}`, trusted: null }, labels: { env: "prod" } });
    const withPassword = await mandate("db", "add", "bad", "--uri", "postgres://u:hunter2@h/db", "--data-dir", plane.dataDir);
    expect(withPassword.code).not.toBe(0);
    expect(withPassword.stderr).toContain("must not contain a password");
    const badRef = await mandate("db", "add", "bad", "--uri", "postgres://u@h/db", "--user-secret", "hunter2", "--data-dir", plane.dataDir);
    expect(badRef.stderr).toContain("not a secret reference");
    const ls = await mandate("db", "ls", "--data-dir", plane.dataDir);
    expect(ls.stdout).toContain("orders");
    expect(ls.stdout).toContain("127.0.0.1:5432/test");
    const show = await mandate("db", "show", "orders", "--data-dir", plane.dataDir);
    expect(show.stdout).toContain(`readonly: password from file:${pwFile}`);
    expect(show.stdout).toContain(`listener    port ${dbPort(plane)}`);
    const added = await mandate("db", "add", "shop", "--uri", "postgres://app@127.0.0.1/shop", "--user-secret", "env:ORDERS_PW", "--data-dir", plane.dataDir, "--format", "json");
    expect(added.json().users).toEqual({ app: "env:ORDERS_PW" });
    const rm = await mandate("db", "rm", "shop", "--data-dir", plane.dataDir);
    expect(rm.stdout).toContain("removed");
    expect((await mandate("db", "show", "shop", "--data-dir", plane.dataDir)).code).not.toBe(0);
    for (const out of [add.stdout, ls.stdout, show.stdout, added.stdout]) expect(out).not.toContain(secret);
    const events = await plane.context.audit.list({ limit: 100 });
    expect(JSON.stringify(events)).not.toContain(secret);
  });

  test("db connect's local port carries the agent identity; psql works through it unchanged", async () => {
    const bridge = await startDbBridge({ credentialDir: reader.credentialDir, proxyHost: "127.0.0.1", proxyPort: dbPort(plane), database: "orders", localPort: 0 });
    try {
      const ok = await psql(`host=127.0.0.1 port=${bridge.port} dbname=whatever user=postgres sslmode=prefer`, "SELECT 'via bridge'");
      expect(ok.stderr).toBe("");
      expect(ok.stdout).toBe("via bridge");
      const denied = await psql(`host=127.0.0.1 port=${bridge.port} dbname=orders user=postgres`, "CREATE TABLE nope (id int)");
      expect(denied.stderr).toContain("permission denied by Mandate");
      const unregistered = await psql(`host=127.0.0.1 port=${bridge.port} dbname=orders user=nobody`, "SELECT 1");
      expect(unregistered.stderr).toContain("has no user nobody registered");
    } finally {
      await bridge.close();
    }
  });
});
