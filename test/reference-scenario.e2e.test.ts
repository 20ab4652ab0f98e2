import { rm } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseLlmConfig } from "../src/llm/index.js";
import type { ControlPlane } from "../src/server/index.js";
import { FakeProvider } from "./fake-provider/server.js";
import { usePolicy } from "./helpers/access.js";
import { type TestAgent, joinTestAgent } from "./helpers/agent.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { FAKE_KEY, anthropicThroughProxy, fakeLlmConfig, openAiThroughProxy } from "./helpers/llm.js";
import { eventually, fetchWithTls } from "./helpers/mcp.js";
import { addTestUser, loginTestUser } from "./helpers/users.js";

const K8S_SERVER = fileURLToPath(new URL("./fixtures/k8s-mcp-server.mjs", import.meta.url));
const TASK = "investigate-checkout-deploy";

async function connect(plane: ControlPlane, agent: TestAgent, delegationToken: string): Promise<Client> {
  const jwt = await agent.jwtSvid();
  const transport = new StreamableHTTPClientTransport(new URL(`${plane.url}/mcp/k8s`), {
    fetch: fetchWithTls({ ca: agent.credentials.bundlePem }),
    requestInit: { headers: { authorization: `Bearer ${jwt}`, "x-mandate-delegation": delegationToken } },
  });
  const client = new Client({ name: agent.name, version: "1" });
  await client.connect(transport);
  return client;
}

function textOf(result: unknown): string {
  return ((result as { content: Array<{ text: string }> }).content ?? []).map((c) => c.text).join("");
}

async function callError(client: Client, name: string, args: Record<string, unknown> = {}): Promise<{ message: string; code: number; data: any }> {
  try {
    await client.callTool({ name, arguments: args });
  } catch (error) {
    return { message: (error as Error).message, code: (error as { code: number }).code, data: (error as { data?: unknown }).data };
  }
  throw new Error(`${name} was allowed`);
}

describe("the reference scenario: Alice delegates to deploy-auditor, through the real MCP proxy", () => {
  let plane: ControlPlane;
  let agent: TestAgent;
  let intruder: TestAgent;
  let alice: string;
  let bob: string;
  let home: string;
  let grantId: string;
  let token: string;
  const fake = new FakeProvider({ apiKey: FAKE_KEY });

  beforeAll(async () => {
    await fake.start();
    plane = await startTestControlPlane({ llm: { config: parseLlmConfig(fakeLlmConfig(fake.url)), env: { FAKE_OPENAI_KEY: FAKE_KEY } } });
    await usePolicy(plane);
    home = await tempDir("mandate-people-");
    const d = ["--data-dir", plane.dataDir];
    expect((await mandate("mcp", "servers", "add", "k8s", "--command", `node ${K8S_SERVER}`, "--labels", "env=prod", "--owner", "platform", ...d)).code).toBe(0);
    const aliceUser = await addTestUser(plane.dataDir, "alice", ["sre"]);
    const bobUser = await addTestUser(plane.dataDir, "bob", ["viewer"]);
    alice = join(home, "alice.json");
    bob = join(home, "bob.json");
    const caPin = plane.context.authority.caPin;
    expect((await loginTestUser(plane.url, caPin, aliceUser, alice)).code).toBe(0);
    expect((await loginTestUser(plane.url, caPin, bobUser, bob)).code).toBe(0);
    agent = await joinTestAgent(plane, "deploy-auditor", { roles: ["k8s-agent"] });
    intruder = await joinTestAgent(plane, "intruder", { roles: ["k8s-agent"] });
  }, 120_000);
  afterAll(async () => {
    const dir = plane?.dataDir;
    await plane?.close();
    await fake.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("Alice delegates; the agent exchanges its SVID for the delegation token", async () => {
    const created = await mandate(
      "delegate", "--identity", alice, "--agent", "deploy-auditor", "--task", TASK, "--ttl", "30m",
      "--allow", "mcp:k8s/read_*", "--allow", "mcp:k8s/rollback", "--allow", "llm:gpt-4.1-mini",
      "--deny", "mcp:*/kubectl_exec", "--require-approval", "mcp:*/rollback", "--max-spend", "2.00", "--format", "json",
    );
    expect(created.code, created.stderr).toBe(0);
    const grant = created.json();
    grantId = grant.id;
    expect(grant).toMatchObject({ status: "active", task: TASK, agent: "deploy-auditor", delegator: "user:alice", chain: ["user:alice", "agent:deploy-auditor"] });
    expect(grantId).toMatch(/^d-[0-9a-f]{16}$/);

    const fetched = await mandate("delegations", "token", "--task", TASK, "--credentials", agent.credentialDir, "--format", "json");
    expect(fetched.code, fetched.stderr).toBe(0);
    const response = fetched.json();
    expect(response).toMatchObject({ issued_token_type: "urn:ietf:params:oauth:token-type:jwt", token_type: "N_A" });
    expect(response.expires_in).toBeGreaterThan(29 * 60);
    token = response.access_token;
    const [header, payload] = token.split(".").slice(0, 2).map((s: string) => JSON.parse(Buffer.from(s, "base64url").toString()));
    expect(header).toMatchObject({ alg: "ES256", typ: "delegation+jwt" });
    expect(payload).toMatchObject({ sub: agent.spiffeId, jti: grantId, task_id: TASK, act: { sub: `spiffe://${plane.context.authority.trustDomain}/user/alice` } });
    expect(payload.delegation_scope).toMatchObject({ deny: ["mcp:*/kubectl_exec"], require_approval: ["mcp:*/rollback"], max_spend_usd: 2 });

    // The same exchange with the JWT-SVID as the subject token, form-encoded, no client certificate.
    const form = new URLSearchParams({
      grant_type: "urn:ietf:params:oauth:grant-type:token-exchange",
      subject_token: await agent.jwtSvid(),
      subject_token_type: "urn:ietf:params:oauth:token-type:jwt",
      resource: `urn:mandate:delegation:${grantId}`,
    });
    const answer = await fetchWithTls({ ca: agent.credentials.bundlePem })(`${plane.url}/v1/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: form.toString() });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("cache-control")).toBe("no-store");
    expect(((await answer.json()) as { access_token: string }).access_token.split(".").length).toBe(3);

    const listed = await mandate("delegations", "ls", "--identity", alice, "--format", "json");
    expect(listed.json().map((g: { id: string }) => g.id)).toContain(grantId);
  }, 60_000);

  it("read_* passes, kubectl_exec is denied naming the delegation, rollback waits for Alice's approval and then passes once", async () => {
    const client = await connect(plane, agent, token);
    try {
      expect((await client.listTools()).tools.map((t) => t.name).sort()).toEqual(["read_logs", "read_pods", "rollback"]);
      expect(textOf(await client.callTool({ name: "read_logs", arguments: { namespace: "checkout", pod: "checkout-7d9f" } }))).toContain("deploy 142 failed readiness");

      const exec = await callError(client, "kubectl_exec", { command: "env" });
      expect(exec.message).toMatch(new RegExp(`denied by Mandate: denied: delegation ${grantId} denies mcp:k8s/kubectl_exec`));
      expect(exec.data).toMatchObject({ deniedBy: "delegation" });

      const args = { deployment: "checkout", namespace: "checkout" };
      const first = await callError(client, "rollback", args);
      expect(first.code).toBe(-32011);
      const requestId: string = first.data.accessRequest.id;
      expect(requestId).toMatch(/^ar-[0-9a-f]{16}$/);
      expect(first.message).toContain(requestId);
      // Asking again finds the same pending request.
      expect((await callError(client, "rollback", args)).data.accessRequest.id).toBe(requestId);

      const pending = await mandate("requests", "ls", "--status", "pending", "--identity", alice, "--format", "json");
      expect(pending.json()).toEqual([expect.objectContaining({ id: requestId, requester: "agent:deploy-auditor", delegation: grantId, resource: "mcp:k8s/rollback", task: TASK })]);

      // Bob has no role that may approve; nobody can approve as an agent.
      const refused = await mandate("requests", "approve", requestId, "--identity", bob, "--format", "json");
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain("PERMISSION_DENIED");
      const asAgent = await mandate("requests", "approve", requestId, "--credentials", agent.credentialDir);
      expect(asAgent.stderr).toMatch(/decided by people/);

      const approved = await mandate("requests", "approve", requestId, "--identity", alice, "--reason", "rollback agreed in the incident channel", "--format", "json");
      expect(approved.code, approved.stderr).toBe(0);
      expect(approved.json()).toMatchObject({ status: "approved", decidedBy: "user:alice", mode: "once" });

      // Other arguments are another call: the approval does not cover them.
      expect((await callError(client, "rollback", { deployment: "payments" })).code).toBe(-32011);
      expect(textOf(await client.callTool({ name: "rollback", arguments: args }))).toContain("rolled back checkout");
      const again = await callError(client, "rollback", args);
      expect(again.code).toBe(-32011);
      expect(again.data.accessRequest.id).not.toBe(requestId);
      expect((await mandate("requests", "show", requestId, "--identity", alice, "--format", "json")).json()).toMatchObject({ status: "consumed", uses: 1 });
    } finally {
      await client.close();
    }
  }, 60_000);

  it("model traffic through the LLM proxy: the delegated model answers, another model is refused by the delegation", async () => {
    const key = `${await agent.jwtSvid()}~${token}`;
    const openai = openAiThroughProxy(plane, agent, key);
    const answer = await openai.chat.completions.create({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "why did deploy 142 fail?" }] });
    expect(answer.choices.length).toBeGreaterThan(0);
    const anthropic = anthropicThroughProxy(plane, agent, key);
    await expect(anthropic.messages.create({ model: "claude-sonnet-4-5", max_tokens: 16, messages: [{ role: "user", content: "hi" }] })).rejects.toThrow(new RegExp(`delegation ${grantId} does not allow llm:claude-sonnet-4-5`));
  }, 60_000);

  it("a model that needs approval: the LLM proxy's refusal names the access request; approved once, one request passes", async () => {
    const made = await mandate("delegate", "--identity", alice, "--agent", "deploy-auditor", "--task", `${TASK}-llm`, "--ttl", "10m", "--allow", "llm:gpt-4.1-mini", "--require-approval", "llm:gpt-4.1-mini", "--format", "json");
    expect(made.code, made.stderr).toBe(0);
    const llmToken = (await mandate("delegations", "token", "--task", `${TASK}-llm`, "--credentials", agent.credentialDir)).stdout.trim();
    const openai = openAiThroughProxy(plane, agent, `${await agent.jwtSvid()}~${llmToken}`);
    const ask = () => openai.chat.completions.create({ model: "gpt-4.1-mini", messages: [{ role: "user", content: "summarise the incident" }] });
    const refused = await ask().then(
      () => undefined,
      (error: { status?: number; message: string }) => error,
    );
    expect(refused?.status).toBe(403);
    const id = /access request (ar-[0-9a-f]{16})/.exec(refused!.message)?.[1];
    expect(id, refused!.message).toBeDefined();
    const approved = await mandate("requests", "approve", id!, "--identity", alice);
    expect(approved.code, approved.stderr).toBe(0);
    expect((await ask()).choices.length).toBeGreaterThan(0);
    await expect(ask()).rejects.toThrow(/approval required/);
  }, 60_000);

  it("a delegation token replayed by another agent is refused", async () => {
    const client = await connect(plane, intruder, token);
    try {
      const refused = await callError(client, "read_logs");
      expect(refused.message).toMatch(/issued to .*deploy-auditor but presented by .*intruder/);
    } finally {
      await client.close();
    }
  }, 60_000);

  it("after revocation the next call fails; after expiry too", async () => {
    const client = await connect(plane, agent, token);
    try {
      const revoked = await mandate("delegations", "revoke", grantId, "--identity", alice, "--reason", "incident closed");
      expect(revoked.code, revoked.stderr).toBe(0);
      expect((await callError(client, "read_logs")).message).toMatch(new RegExp(`delegation ${grantId} was revoked`));
      const fetched = await mandate("delegations", "token", "--task", TASK, "--credentials", agent.credentialDir);
      expect(fetched.code).toBe(1);
      expect(fetched.stderr).toMatch(/invalid_grant/);
    } finally {
      await client.close();
    }

    const short = await mandate("delegate", "--identity", alice, "--agent", "deploy-auditor", "--task", `${TASK}-2`, "--ttl", "3s", "--allow", "mcp:k8s/read_*", "--format", "json");
    expect(short.code, short.stderr).toBe(0);
    const shortToken = (await mandate("delegations", "token", "--task", `${TASK}-2`, "--credentials", agent.credentialDir)).stdout.trim();
    const second = await connect(plane, agent, shortToken);
    try {
      expect(textOf(await second.callTool({ name: "read_pods", arguments: {} }))).toContain("CrashLoopBackOff");
      await new Promise((r) => setTimeout(r, 3200));
      expect((await callError(second, "read_pods")).message).toMatch(/expired/);
    } finally {
      await second.close();
    }
  }, 60_000);

  it("mandate audit trace <task> shows the chain: delegation, token, tool calls, decisions, approval", async () => {
    const trace = await eventually(async () => {
      const result = await mandate("audit", "trace", TASK, "--data-dir", plane.dataDir, "--format", "json");
      expect(result.code, result.stderr).toBe(0);
      const text = result.stdout;
      for (const type of ["delegation.create", "delegation.token", "llm.request", "mcp.tool.call", "access_request.create", "access_request.approve", "access_request.use", "delegation.revoke"]) expect(text).toContain(type);
      return result.json();
    });
    const text = JSON.stringify(trace);
    expect(text).toContain('"chain":["user:alice","agent:deploy-auditor"]');
    expect(text).toContain("kubectl_exec");
    const events = await plane.context.audit.list({ type: "mcp.tool.call", task: TASK });
    const denied = events.find((e) => e.target?.name === "kubectl_exec" && e.decision?.allow === false)!;
    expect(denied.delegation).toMatchObject({ id: grantId, delegator: "user:alice", chain: ["user:alice", "agent:deploy-auditor"] });
    const human = await mandate("audit", "trace", TASK, "--data-dir", plane.dataDir);
    expect(human.stdout).toMatch(/kubectl_exec.*DENY/);
  }, 60_000);
});
