import { writeFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { createHash } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/server/index.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { EVERYTHING_BIN, fetchWithTls } from "./helpers/mcp.js";
import { type TestUser, addTestUser } from "./helpers/users.js";

const REDIRECT = "http://127.0.0.1:53682/callback";

/** A person signed in through OAuth is decided by the real access layer: their own roles, nothing else. */
describe("MCP over OAuth through the real policy engine", () => {
  let plane: ControlPlane;
  let work: string;
  let tlsFetch: typeof fetch;

  beforeAll(async () => {
    plane = await startTestControlPlane();
    work = await tempDir();
    tlsFetch = fetchWithTls({ ca: plane.context.authority.x509AuthoritiesPem() });
    const d = ["--data-dir", plane.dataDir];
    expect((await mandate("mcp", "servers", "add", "everything", "--command", `node ${EVERYTHING_BIN} stdio`, "--owner", "alice", ...d)).code).toBe(0);
    await writeFile(join(work, "role.yaml"), "kind: role\nname: echoer\nallow:\n  mcp:\n    - servers: [everything]\n      tools: [echo]\n");
    const applied = await mandate("roles", "apply", "-f", join(work, "role.yaml"), ...d);
    expect(applied.code, applied.stderr).toBe(0);
  }, 60_000);
  afterAll(async () => {
    const dir = plane?.dataDir;
    await plane?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  async function tokenFor(user: TestUser): Promise<string> {
    const registered = (await (await tlsFetch(`${plane.url}/oauth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ redirect_uris: [REDIRECT] }) })).json()) as { client_id: string };
    const verifier = createHash("sha256").update(user.name).digest("base64url");
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const page = await tlsFetch(`${plane.url}/oauth/authorize?${new URLSearchParams({ response_type: "code", client_id: registered.client_id, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: "S256", resource: `${plane.url}/mcp/everything` })}`);
    const cookie = page.headers.get("set-cookie")!.split(";")[0]!;
    const requestId = /name="request_id" value="([^"]+)"/.exec(await page.text())![1]!;
    const login = await tlsFetch(`${plane.url}/oauth/authorize`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", cookie },
      body: new URLSearchParams({ request_id: requestId, user: user.name, password: user.password, totp: user.code() }).toString(),
    });
    const code = new URL(login.headers.get("location")!).searchParams.get("code")!;
    const tokens = await tlsFetch(`${plane.url}/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code, client_id: registered.client_id, redirect_uri: REDIRECT, code_verifier: verifier }).toString(),
    });
    return ((await tokens.json()) as { access_token: string }).access_token;
  }

  const connect = async (token: string) => {
    const client = new Client({ name: "policy-test", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(new URL(`${plane.url}/mcp/everything`), { fetch: tlsFetch, requestInit: { headers: { authorization: `Bearer ${token}` } } }));
    return client;
  };

  it("a user with the role sees and calls only what the role allows; a user without it sees nothing", async () => {
    const alice = await addTestUser(plane.dataDir, "alice", ["echoer"]);
    const client = await connect(await tokenFor(alice));
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(["echo"]);
      expect(JSON.stringify((await client.callTool({ name: "echo", arguments: { message: "ok" } })).content)).toContain("ok");
      const denied = await client.callTool({ name: "get-env", arguments: {} }).then(
        (r) => JSON.stringify(r),
        (e: Error) => e.message,
      );
      expect(denied).toMatch(/denied|not allowed|unknown tool/i);
    } finally {
      await client.close();
    }
    const bob = await addTestUser(plane.dataDir, "bob");
    const other = await connect(await tokenFor(bob));
    try {
      expect((await other.listTools()).tools).toEqual([]);
    } finally {
      await other.close();
    }
    const decisions = (await plane.context.audit.list({ user: "alice", limit: 200 })).filter((e) => e.decision);
    expect(decisions.length).toBeGreaterThan(0);
  });
});
