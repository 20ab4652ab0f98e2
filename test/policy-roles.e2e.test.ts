import { createHash } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { Readable } from "node:stream";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { accessRequest, agent, mcp } from "../src/policy/testing.js";
import type { ControlPlane } from "../src/server/index.js";
import { availableBackends, tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { freshPostgresDatabase, postgresBaseUrl } from "./helpers/postgres.js";

const READER = `kind: role
name: incident-reader
description: read-only incident work
allow:
  mcp:
    - servers: [k8s]
      tools: ["read_*"]
      conditions: 'context.args has namespace && context.args.namespace == "checkout"'
deny:
  mcp:
    - servers: ["*"]
      tools: [kubectl_exec]
approve: ["mcp:k8s/*"]
`;
const WRITER = `kind: role
name: writer
allow:
  llm:
    models: ["gpt-4.1*"]
`;
const BROKEN = `kind: role
name: broken
allow:
  mcp:
    - servers: [k8s]
      tools: ["read_***"]
`;

const bot = agent("deploy-auditor", ["incident-reader", "writer"]);
const readLogs = accessRequest(bot, mcp("k8s", "read_logs"), { context: { args: { namespace: "checkout" } }, now: undefined });

for (const backend of await availableBackends()) {
  describe(`roles through the CLI (${backend.name})`, () => {
    let plane: ControlPlane;
    let cleanup: () => Promise<void>;
    let work: string;
    const cli = (...args: string[]) => mandate(...args, "--data-dir", plane.dataDir);

    beforeAll(async () => {
      const created = await backend.create();
      cleanup = created.cleanup;
      plane = await startTestControlPlane({ dataDir: created.dataDir, storage: created.storage });
      work = await tempDir();
    });
    afterAll(async () => {
      await plane?.close();
      await cleanup?.();
      await rm(work, { recursive: true, force: true });
    });

    it("applies several roles from one file and decides on them at once", async () => {
      expect(plane.context.policy!.authorize(readLogs).allow).toBe(false);
      const file = join(work, "roles.yaml");
      await writeFile(file, `${READER}---\n${WRITER}`);
      const applied = await cli("roles", "apply", "-f", file, "--format", "json");
      expect(applied.code, applied.stderr).toBe(0);
      expect(applied.json()).toMatchObject({ created: ["incident-reader", "writer"], updated: [], unchanged: [] });
      expect(plane.context.policy!.authorize(readLogs)).toMatchObject({ allow: true });
      expect(plane.context.policy!.authorize({ ...readLogs, context: { args: { namespace: "kube-system" } } }).allow).toBe(false);
      expect(plane.context.policy!.mayApprove({ kind: "user", name: "alice", roles: ["incident-reader"], labels: {} }, "mcp:k8s/rollback")).toBe(true);
      const again = await cli("roles", "apply", "-f", file);
      expect(again.stdout).toMatch(/role incident-reader unchanged/);
    });

    it("reads role documents from stdin with -f -", async () => {
      const original = Object.getOwnPropertyDescriptor(process, "stdin")!;
      Object.defineProperty(process, "stdin", { value: Readable.from([Buffer.from(WRITER)]), configurable: true });
      try {
        const applied = await cli("roles", "apply", "-f", "-", "--format", "json");
        expect(applied.code, applied.stderr).toBe(0);
        expect(applied.json().unchanged).toEqual(["writer"]);
      } finally {
        Object.defineProperty(process, "stdin", original);
      }
    });

    it("lists and shows roles; show prints the YAML as applied", async () => {
      const listed = await cli("roles", "ls", "--format", "json");
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.json().map((r: { name: string }) => r.name)).toEqual(["incident-reader", "writer"]);
      expect(listed.json()[0].description).toBe("read-only incident work");
      const table = await cli("roles", "ls");
      expect(table.stdout).toMatch(/incident-reader\s+read-only incident work/);
      const shown = await cli("roles", "show", "incident-reader");
      expect(shown.stdout).toBe(READER);
    });

    it("rejects a bad document with its line, and applies nothing from that file", async () => {
      const file = join(work, "mixed.yaml");
      await writeFile(file, `${WRITER.replace("gpt-4.1*", "gpt-5*")}---\n${BROKEN}`);
      const applied = await cli("roles", "apply", "-f", file);
      expect(applied.code).toBe(1);
      expect(applied.stderr).toMatch(/mixed\.yaml:12: allow\.mcp\[0\]\.tools\[0\]: invalid glob .*\[POLICY_INVALID\]/);
      const shown = await cli("roles", "show", "writer");
      expect(shown.stdout).toContain("gpt-4.1*");
      const bad = await cli("roles", "apply", "-f", join(work, "missing.yaml"));
      expect(bad.code).toBe(1);
      const unknown = await cli("roles", "show", "nope", "--format", "json");
      expect(unknown.code).toBe(1);
      expect(JSON.parse(unknown.stderr).error.code).toBe("NOT_FOUND");
    });

    it("runtime allow-list and emergency deny list", async () => {
      const empty = await cli("allowlist", "ls", "--format", "json");
      expect(empty.json().effective).toEqual({ allow: ["**"], deny: [] });
      expect((await cli("allowlist", "add", "llm:**")).code).toBe(0);
      expect(plane.context.policy!.authorize(readLogs)).toMatchObject({ allow: false, deniedBy: "runtime" });
      expect((await cli("allowlist", "add", "mcp:k8s/**")).code).toBe(0);
      expect(plane.context.policy!.authorize(readLogs).allow).toBe(true);
      const denied = await cli("allowlist", "add", "mcp:*/read_logs", "--deny", "--reason", "incident 4711", "--format", "json");
      expect(denied.code, denied.stderr).toBe(0);
      expect(denied.json().effective.deny).toEqual(["mcp:*/read_logs"]);
      expect(plane.context.policy!.authorize(readLogs)).toMatchObject({ allow: false, deniedBy: "runtime", reasons: [expect.stringMatching(/runtime deny list blocks mcp:k8s\/read_logs/)] });
      const bad = await cli("allowlist", "add", "mcp:***");
      expect(bad.stderr).toMatch(/POLICY_INVALID/);
      expect((await cli("allowlist", "rm", "mcp:*/read_logs", "--deny")).code).toBe(0);
      expect((await cli("allowlist", "rm", "mcp:*/read_logs", "--deny")).code).toBe(1);
      expect((await cli("allowlist", "rm", "mcp:k8s/**")).code).toBe(0);
      expect((await cli("allowlist", "rm", "llm:**")).code).toBe(0);
      expect(plane.context.policy!.authorize(readLogs).allow).toBe(true);
    });

    it("removes a role, and audits every change", async () => {
      const removed = await cli("roles", "rm", "incident-reader");
      expect(removed.code, removed.stderr).toBe(0);
      expect(plane.context.policy!.authorize(readLogs)).toMatchObject({ allow: false, deniedBy: "agent_roles" });
      const events = await cli("audit", "search", "--format", "jsonl");
      const parsed = events.stdout.split("\n").filter(Boolean).map((line) => JSON.parse(line) as { type: string; code: string; details?: { sha256?: Record<string, string> } });
      const types = parsed.map((e) => e.type);
      const firstApply = parsed.find((e) => e.type === "role.apply" && e.code === "OK" && e.details?.sha256?.["incident-reader"]);
      expect(firstApply?.details?.sha256?.["incident-reader"]).toBe(createHash("sha256").update(READER).digest("hex"));
      expect(parsed.some((e) => e.type === "role.apply" && e.code === "POLICY_INVALID")).toBe(true);
      expect(types).toEqual(expect.arrayContaining(["role.apply", "role.remove", "allowlist.add", "allowlist.remove"]));
    });

    it("validates offline, as apply would", async () => {
      const good = join(work, "good.yaml");
      await writeFile(good, `${READER}---\n${WRITER}`);
      const ok = await mandate("roles", "validate", "-f", good, "--format", "json");
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.json()).toEqual({ valid: true, roles: ["incident-reader", "writer"] });
      const bad = join(work, "bad.yaml");
      await writeFile(bad, BROKEN);
      const refused = await mandate("roles", "validate", "-f", bad);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/bad\.yaml:6: .*invalid glob/);
    });

    it("refuses callers without the admin identity on every route", async () => {
      for (const [method, url, payload] of [
        ["POST", "/v1/roles", { yaml: WRITER.replace("writer", "sneaky") }],
        ["GET", "/v1/roles", undefined],
        ["GET", "/v1/roles/writer", undefined],
        ["DELETE", "/v1/roles/writer", undefined],
        ["GET", "/v1/allowlist", undefined],
        ["POST", "/v1/allowlist", { pattern: "mcp:**", effect: "deny" }],
        ["PUT", "/v1/allowlist", { allow: [], deny: ["**"] }],
        ["DELETE", "/v1/allowlist?pattern=x&effect=allow", undefined],
      ] as const) {
        const answer = await plane.app.inject({ method, url, ...(payload ? { payload } : {}) });
        expect([401, 403], `${method} ${url}: ${answer.statusCode}`).toContain(answer.statusCode);
      }
      const listed = await cli("roles", "ls", "--format", "json");
      expect(listed.json().map((r: { name: string }) => r.name)).not.toContain("sneaky");
      expect((await cli("allowlist", "ls", "--format", "json")).json().effective.deny).toEqual([]);
    });

    it("teaches in --help", async () => {
      const help = await mandate("roles", "apply", "--help");
      expect(help.stdout).toMatch(/require_approval/);
      expect(help.stdout).toMatch(/mandate roles apply -f/);
      const allowHelp = await mandate("allowlist", "--help");
      expect(allowHelp.stdout).toMatch(/--deny/);
    });
  });
}

const base = await postgresBaseUrl();

describe.skipIf(!base)("roles applied on one control plane are enforced by another within a second", () => {
  it("sees the new role and the emergency deny", async () => {
    const db = await freshPostgresDatabase(base!);
    const [dirA, dirB] = [await tempDir(), await tempDir()];
    const [a, b] = await Promise.all([
      startTestControlPlane({ dataDir: dirA, storage: db.url, trustDomain: "cluster.test" }),
      startTestControlPlane({ dataDir: dirB, storage: db.url, trustDomain: "cluster.test" }),
    ]);
    try {
      const request = accessRequest(agent("bot", ["writer"]), { kind: "llm", model: "gpt-4.1-mini" }, { now: undefined });
      const file = join(dirA, "writer.yaml");
      await writeFile(file, WRITER);
      const waitFor = async (predicate: () => boolean) => {
        const started = Date.now();
        while (!predicate()) {
          if (Date.now() - started > 1000) throw new Error("not seen within a second");
          await new Promise((r) => setTimeout(r, 20));
        }
        return Date.now() - started;
      };
      expect((await mandate("roles", "apply", "-f", file, "--data-dir", a.dataDir)).code).toBe(0);
      await waitFor(() => b.context.policy!.authorize(request).allow);
      expect((await mandate("allowlist", "add", "llm:*", "--deny", "--data-dir", a.dataDir)).code).toBe(0);
      await waitFor(() => b.context.policy!.authorize(request).deniedBy === "runtime");
    } finally {
      await a.close();
      await b.close();
      await db.drop();
      await rm(dirA, { recursive: true, force: true });
      await rm(dirB, { recursive: true, force: true });
    }
  });
});
