import { afterAll, beforeAll, expect, test } from "vitest";
import type { ControlPlane } from "../src/server/index.js";
import { joinTestAgent, type TestAgent } from "./helpers/agent.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { applyDbRoles, proxyClient, registerDatabase } from "./helpers/db.js";

let plane: ControlPlane;
let reader: TestAgent;

beforeAll(async () => {
  // SVIDs that live 4 seconds: a connection opened with one must not outlive it.
  plane = await startTestControlPlane({ db: { listen: "127.0.0.1:0" }, svidTtlMs: 4000 });
  await applyDbRoles(plane);
  await registerDatabase(plane, "orders");
  reader = await joinTestAgent(plane, "reader-expiring", { roles: ["db-reader"] });
}, 60_000);

afterAll(async () => {
  await plane?.close();
});

test("a connection ends when the certificate it logged in with expires", async () => {
  const client = proxyClient(plane, reader, "orders");
  const errors: Error[] = [];
  client.on("error", (e) => errors.push(e));
  await client.connect();
  expect((await client.query("SELECT 1 AS ok")).rows).toEqual([{ ok: 1 }]);
  const ended = new Promise<void>((resolve) => client.once("end", () => resolve()));
  const wait = reader.credentials.notAfter.getTime() - Date.now() + 2500;
  await Promise.race([ended, new Promise((r) => setTimeout(r, wait))]);
  await expect(client.query("SELECT 1")).rejects.toBeDefined();
  expect(errors.map((e) => e.message).join(" ")).toMatch(/expired/);
}, 30_000);
