import { rm } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/server/index.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { EVERYTHING_BIN } from "./helpers/mcp.js";

const SECRET = "s3cr3t-value-that-must-never-leave";

describe("mandate mcp servers: the catalog", () => {
  let plane: ControlPlane;
  beforeAll(async () => {
    plane = await startTestControlPlane();
  });
  afterAll(async () => {
    const dir = plane?.dataDir;
    await plane?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("adds stdio and HTTP servers, lists and shows them without ever returning a secret, removes them", async () => {
    const d = ["--data-dir", plane.dataDir];
    const add = await mandate("mcp", "servers", "add", "k8s", "--command", `node "${EVERYTHING_BIN}" stdio`, "--env-secret", `API_TOKEN=${SECRET}`, "--labels", "env=prod,team=sre", "--owner", "alice", ...d, "--format", "json");
    expect(add.code, add.stderr).toBe(0);
    expect(add.json()).toMatchObject({ name: "k8s", transport: "stdio", command: ["node", EVERYTHING_BIN, "stdio"], labels: { env: "prod", team: "sre" }, owner: "alice", secrets: { env: ["API_TOKEN"], headers: [] } });
    const remote = await mandate("mcp", "servers", "add", "remote", "--url", "https://127.0.0.1:1/mcp", "--header-secret", `Authorization: Bearer ${SECRET}`, "--stateless", "--owner", "bob", ...d, "--format", "json");
    expect(remote.code, remote.stderr).toBe(0);
    expect(remote.json()).toMatchObject({ transport: "http", stateless: true, secrets: { headers: ["Authorization"] } });

    const again = await mandate("mcp", "servers", "add", "k8s", "--command", "node x.js", "--owner", "alice", ...d);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("ALREADY_EXISTS");
    const both = await mandate("mcp", "servers", "add", "bad", "--command", "node x.js", "--url", "https://127.0.0.1/", "--owner", "alice", ...d);
    expect(both.stderr).toContain("exactly one of --command");
    const badName = await mandate("mcp", "servers", "add", "../etc", "--command", "node x.js", "--owner", "alice", ...d);
    expect(badName.stderr).toContain("invalid server name");

    const ls = await mandate("mcp", "servers", "ls", ...d);
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toContain("k8s");
    expect(ls.stdout).toContain("remote");
    const show = await mandate("mcp", "servers", "show", "k8s", ...d);
    expect(show.stdout).toContain("env API_TOKEN");
    const json = await mandate("mcp", "servers", "show", "remote", ...d, "--format", "json");
    for (const output of [ls.stdout, show.stdout, json.stdout, add.stdout, remote.stdout]) expect(output).not.toContain(SECRET);

    const audit = await mandate("audit", "search", "--type", "mcp.server.create", ...d, "--format", "json");
    expect(audit.stdout).toContain("API_TOKEN");
    expect(audit.stdout).not.toContain(SECRET);

    const removed = await mandate("mcp", "servers", "rm", "remote", ...d);
    expect(removed.code, removed.stderr).toBe(0);
    expect((await mandate("mcp", "servers", "show", "remote", ...d)).stderr).toContain("NOT_FOUND");
  });

  it("prints client configuration snippets that run mandate mcp connect", async () => {
    const claude = await mandate("mcp", "config", "--client", "claude", "--server", "k8s", "--creds", "/run/mandate");
    expect(claude.code, claude.stderr).toBe(0);
    expect(JSON.parse(claude.stdout)).toEqual({ mcpServers: { k8s: { command: "mandate", args: ["mcp", "connect", "k8s", "--creds", "/run/mandate"] } } });
    const vscode = await mandate("mcp", "config", "--client", "vscode", "--server", "k8s", "--creds", "/run/mandate");
    expect(JSON.parse(vscode.stdout)).toEqual({ servers: { k8s: { type: "stdio", command: "mandate", args: ["mcp", "connect", "k8s", "--creds", "/run/mandate"] } } });
    const unknown = await mandate("mcp", "config", "--client", "emacs", "--server", "k8s");
    expect(unknown.code).toBe(1);
  });
});
