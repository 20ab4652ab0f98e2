import { createHmac, generateKeyPairSync } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import * as jose from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/server/index.js";
import { usePolicy } from "./helpers/access.js";
import { type TestAgent, joinTestAgent } from "./helpers/agent.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { fetchWithTls } from "./helpers/mcp.js";
import { addTestUser, loginTestUser } from "./helpers/users.js";

const EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT = "urn:ietf:params:oauth:token-type:jwt";
const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");

describe("the token endpoint (RFC 8693) under hostile input", () => {
  let plane: ControlPlane;
  let agent: TestAgent;
  let other: TestAgent;
  let alice: string;
  let home: string;
  let serverId: string;
  let grantId: string;

  const post = async (params: Record<string, string> | string, tls: { cert?: string; key?: string } = {}) => {
    const body = typeof params === "string" ? params : new URLSearchParams(params).toString();
    const answer = await fetchWithTls({ ca: agent.credentials.bundlePem, ...tls })(`${plane.url}/v1/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body });
    return { status: answer.status, body: (await answer.json()) as Record<string, string> };
  };
  const exchange = (subjectToken: string, extra: Record<string, string> = {}) => post({ grant_type: EXCHANGE, subject_token: subjectToken, subject_token_type: JWT, ...extra });

  beforeAll(async () => {
    plane = await startTestControlPlane();
    await usePolicy(plane);
    serverId = `spiffe://${plane.context.authority.trustDomain}/mandate/server`;
    home = await tempDir("mandate-people-");
    const user = await addTestUser(plane.dataDir, "alice", ["sre"]);
    alice = join(home, "alice.json");
    expect((await loginTestUser(plane.url, plane.context.authority.caPin, user, alice)).code).toBe(0);
    agent = await joinTestAgent(plane, "deploy-auditor", { roles: ["k8s-agent"] });
    other = await joinTestAgent(plane, "intruder", { roles: ["k8s-agent"] });
    const created = await mandate("delegate", "--identity", alice, "--agent", "deploy-auditor", "--task", "t1", "--ttl", "10m", "--allow", "mcp:k8s/read_*", "--format", "json");
    expect(created.code, created.stderr).toBe(0);
    grantId = created.json().id;
  }, 120_000);
  afterAll(async () => {
    const dir = plane?.dataDir;
    await plane?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
    if (home) await rm(home, { recursive: true, force: true });
  });

  it("a valid JWT-SVID gets the token; RFC 8693 response fields", async () => {
    const answer = await exchange(await agent.jwtSvid(), { requested_token_type: JWT, audience: serverId });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ issued_token_type: JWT, token_type: "N_A" });
    expect(Number(answer.body.expires_in)).toBeGreaterThan(500);
  });

  it("malformed requests: RFC 6749 error bodies", async () => {
    expect(await post({ subject_token: "x" })).toMatchObject({ status: 400, body: { error: "invalid_request", error_description: expect.stringMatching(/grant_type is required/) } });
    expect(await post({ grant_type: "client_credentials" })).toMatchObject({ status: 400, body: { error: "unsupported_grant_type" } });
    expect(await post(`grant_type=${encodeURIComponent(EXCHANGE)}&grant_type=${encodeURIComponent(EXCHANGE)}`)).toMatchObject({ status: 400, body: { error: "invalid_request", error_description: expect.stringMatching(/more than once/) } });
    expect(await post({ grant_type: EXCHANGE })).toMatchObject({ status: 400, body: { error: "invalid_request", error_description: expect.stringMatching(/subject_token is required/) } });
    const jwt = await agent.jwtSvid();
    expect(await exchange(jwt, { requested_token_type: "urn:ietf:params:oauth:token-type:refresh_token" })).toMatchObject({ body: { error: "invalid_request" } });
    expect(await exchange(jwt, { audience: "https://elsewhere.example" })).toMatchObject({ body: { error: "invalid_target" } });
    expect(await exchange(jwt, { resource: "https://elsewhere.example/api" })).toMatchObject({ body: { error: "invalid_target" } });
    expect(await post({ grant_type: EXCHANGE, subject_token: jwt, subject_token_type: "urn:ietf:params:oauth:token-type:access_token" })).toMatchObject({ body: { error: "invalid_request" } });
  });

  it("forged, expired, other-audience, alg none and HS256 subject tokens are refused with the reason", async () => {
    const good = await agent.jwtSvid();
    const [header, payload] = good.split(".").slice(0, 2).map((s) => JSON.parse(Buffer.from(s, "base64url").toString()));
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const forged = await new jose.SignJWT(payload).setProtectedHeader(header).sign(privateKey);
    const expired = await plane.context.authority.jwtSvidSigner.mintJwtSvid({ spiffeId: agent.spiffeId, audience: [serverId], ttlSeconds: 60, now: new Date(Date.now() - 3600_000) });
    const elsewhere = await plane.context.authority.jwtSvidSigner.mintJwtSvid({ spiffeId: agent.spiffeId, audience: ["https://elsewhere.example"], ttlSeconds: 60 });
    const none = `${b64({ alg: "none", typ: "JWT" })}.${b64(payload)}.`;
    const hsInput = `${b64({ alg: "HS256", typ: "JWT", kid: header.kid })}.${b64(payload)}`;
    const hs = `${hsInput}.${createHmac("sha256", "secret").update(hsInput).digest("base64url")}`;
    const cases: Array<[string, RegExp]> = [
      [forged, /signature does not verify/],
      [expired, /expired/],
      [elsewhere, /names none of this trust domain's proxies/],
      [none, /not a JWS compact serialization|algorithm "none"/],
      [hs, /algorithm "HS256" is not allowed/],
      ["garbage", /not a JWT|compact/],
    ];
    for (const [token, reason] of cases) {
      const answer = await exchange(token);
      expect(answer.status, token).toBe(400);
      expect(answer.body.error).toBe("invalid_request");
      expect(answer.body.error_description).toMatch(reason);
    }
    const refusals = await plane.context.audit.list({ type: "delegation.token" });
    expect(refusals.filter((e) => e.outcome.status === "error").length).toBeGreaterThanOrEqual(cases.length);
    expect(JSON.stringify(refusals)).not.toContain(good);
  });

  it("a delegation token is not an identity: refused as a subject token and as a JWT-SVID at the proxy", async () => {
    const token = (await exchange(await agent.jwtSvid())).body.access_token!;
    const asSubject = await exchange(token);
    expect(asSubject.body.error).toBe("invalid_request");
    expect(asSubject.body.error_description).toMatch(/typ/);
    const atProxy = await fetchWithTls({ ca: agent.credentials.bundlePem })(`${plane.url}/mcp/k8s`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: "{}" });
    expect(atProxy.status).toBe(401);
  });

  it("another agent cannot obtain this agent's token, by its own SVID, by naming the grant, or with a mismatched certificate", async () => {
    const byOther = await exchange(await other.jwtSvid(), { resource: `urn:mandate:delegation:${grantId}` });
    expect(byOther.body).toMatchObject({ error: "invalid_grant", error_description: expect.stringMatching(/intruder holds no delegation/) });
    expect((await exchange(await other.jwtSvid())).body.error).toBe("invalid_grant");
    const mixed = await exchange(await agent.jwtSvid(), {});
    expect(mixed.status).toBe(200);
    const confused = await post({ grant_type: EXCHANGE, subject_token: await agent.jwtSvid(), subject_token_type: JWT }, { cert: other.credentials.svidPem, key: other.credentials.keyPem });
    expect(confused.body).toMatchObject({ error: "invalid_request", error_description: expect.stringMatching(/present one identity/) });
  });

  it("with several live grants the agent must choose, by task or by id", async () => {
    const second = await mandate("delegate", "--identity", alice, "--agent", "deploy-auditor", "--task", "t2", "--ttl", "10m", "--allow", "mcp:k8s/read_logs", "--format", "json");
    expect(second.code, second.stderr).toBe(0);
    const ambiguous = await exchange(await agent.jwtSvid());
    expect(ambiguous.body).toMatchObject({ error: "invalid_request", error_description: expect.stringMatching(/holds 2 live delegations/) });
    const byTask = await exchange(await agent.jwtSvid(), { resource: "urn:mandate:task:t2" });
    expect(JSON.parse(Buffer.from(byTask.body.access_token!.split(".")[1]!, "base64url").toString())).toMatchObject({ task_id: "t2", jti: second.json().id });
    // The agent's mTLS connection alone also works (no subject token).
    const viaMtls = await post({ grant_type: EXCHANGE, resource: `urn:mandate:delegation:${grantId}` }, { cert: agent.credentials.svidPem, key: agent.credentials.keyPem });
    expect(viaMtls.status).toBe(200);
  });

  it("the access check tool: exit status 0 when allowed, 1 when denied, reasons naming the layer", async () => {
    const allowed = await mandate("access", "check", "--identity", alice, "--agent", "deploy-auditor", "--delegation", grantId, "mcp:k8s/read_logs", "--format", "json");
    expect(allowed.code, allowed.stderr).toBe(0);
    expect(allowed.json()).toMatchObject({ allow: true, resource: "mcp:k8s/read_logs", delegation: { chain: ["user:alice", "agent:deploy-auditor"] } });
    const denied = await mandate("access", "check", "--identity", alice, "--agent", "deploy-auditor", "--delegation", grantId, "mcp:k8s/kubectl_exec", "--args", '{"command":"env"}');
    expect(denied.code).toBe(1);
    expect(denied.stdout).toMatch(/DENY .*\(denied by: delegation\)/);
    expect(denied.stdout).toMatch(new RegExp(`delegation ${grantId} does not allow mcp:k8s/kubectl_exec`));
    const asAdmin = await mandate("access", "check", "--data-dir", plane.dataDir, "--agent", "deploy-auditor", "llm:claude-opus", "--format", "json");
    expect(asAdmin.code).toBe(1);
    expect(asAdmin.json()).toMatchObject({ allow: false, deniedBy: "agent_roles" });
    const byAgent = await mandate("access", "check", "--credentials", agent.credentialDir, "--agent", "deploy-auditor", "mcp:k8s/read_logs");
    expect(byAgent.stderr).toMatch(/PERMISSION_DENIED/);
  });

  it("sub-delegation with the agent's credentials: attenuation only, nested act chain, cascading revocation", async () => {
    const parent = await mandate("delegate", "--identity", alice, "--agent", "deploy-auditor", "--task", "t-sub", "--ttl", "10m", "--allow", "mcp:k8s/read_*", "--allow", "delegate:log-reader", "--deny", "mcp:*/kubectl_exec", "--format", "json");
    expect(parent.code, parent.stderr).toBe(0);
    const parentId = parent.json().id;
    const reader = await joinTestAgent(plane, "log-reader", { roles: ["k8s-agent"] });
    const widened = await mandate("delegate", "--credentials", agent.credentialDir, "--parent", parentId, "--agent", "log-reader", "--ttl", "5m", "--allow", "mcp:k8s/*");
    expect(widened.code).toBe(1);
    expect(widened.stderr).toMatch(/may only narrow its parent: "mcp:k8s\/\*" is not covered .*\[SCOPE_WIDENING\]/);
    const longer = await mandate("delegate", "--credentials", agent.credentialDir, "--parent", parentId, "--agent", "log-reader", "--ttl", "20m", "--allow", "mcp:k8s/read_logs");
    expect(longer.stderr).toMatch(/cannot outlive its parent.*\[SCOPE_WIDENING\]/);
    const child = await mandate("delegate", "--credentials", agent.credentialDir, "--parent", parentId, "--agent", "log-reader", "--ttl", "5m", "--allow", "mcp:k8s/read_logs", "--format", "json");
    expect(child.code, child.stderr).toBe(0);
    expect(child.json()).toMatchObject({ task: "t-sub", delegator: "agent:deploy-auditor", depth: 2, chain: ["user:alice", "agent:deploy-auditor", "agent:log-reader"], scope: { deny: ["mcp:*/kubectl_exec"] } });
    const token = (await mandate("delegations", "token", "--task", "t-sub", "--credentials", reader.credentialDir)).stdout.trim();
    const claims = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString());
    const td = plane.context.authority.trustDomain;
    expect(claims).toMatchObject({ sub: reader.spiffeId, act: { sub: `spiffe://${td}/agent/deploy-auditor`, act: { sub: `spiffe://${td}/user/alice` } } });
    // The holder cannot revoke its own grant upward; Alice revokes the parent and the child dies with it.
    expect((await mandate("delegations", "revoke", parentId, "--credentials", agent.credentialDir)).stderr).toMatch(/cannot revoke it/);
    const revoked = await mandate("delegations", "revoke", parentId, "--identity", alice, "--format", "json");
    expect(revoked.json().revoked.sort()).toEqual([parentId, child.json().id].sort());
    expect((await mandate("delegations", "token", "--task", "t-sub", "--credentials", reader.credentialDir)).stderr).toMatch(/invalid_grant/);
  }, 60_000);

  it("an admin delegates only on behalf of a named person, within that person's access", async () => {
    const missing = await mandate("delegate", "--data-dir", plane.dataDir, "--agent", "deploy-auditor", "--task", "t3", "--ttl", "5m", "--allow", "mcp:k8s/read_logs");
    expect(missing.stderr).toMatch(/--as-user/);
    const made = await mandate("delegate", "--data-dir", plane.dataDir, "--as-user", "alice", "--agent", "deploy-auditor", "--task", "t3", "--ttl", "5m", "--allow", "mcp:k8s/read_logs", "--format", "json");
    expect(made.code, made.stderr).toBe(0);
    expect(made.json()).toMatchObject({ delegator: "user:alice", createdBy: expect.stringContaining("/mandate/admin") });
    const shown = await mandate("delegations", "show", made.json().id, "--identity", alice);
    expect(shown.stdout).toMatch(/user:alice → agent:deploy-auditor/);
  });
});
