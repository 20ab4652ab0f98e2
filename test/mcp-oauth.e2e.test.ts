import { rm } from "node:fs/promises";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { type OAuthClientProvider, UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { OAuthClientInformationMixed, OAuthClientMetadata, OAuthTokens } from "@modelcontextprotocol/sdk/shared/auth.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/server/index.js";
import { usePolicy } from "./helpers/access.js";
import { type TestBackend, availableBackends } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { EVERYTHING_BIN, eventually, fetchWithTls } from "./helpers/mcp.js";
import { type TestUser, addTestUser } from "./helpers/users.js";
import { startOidcLoginProvider } from "./helpers/oidc-login.js";

const REDIRECT = "http://127.0.0.1:53682/callback";

/** People with sre may use the MCP servers (alice locally, erin through the SSO role map). */
const ROLES = `
kind: role
name: sre
allow:
  mcp:
    - servers: ["**"]
`;

/** An MCP client's OAuth state, kept in memory; "the browser" is the test. */
class HeadlessProvider implements OAuthClientProvider {
  client?: OAuthClientInformationMixed;
  saved?: OAuthTokens;
  verifier = "";
  authorizationUrl?: URL;
  readonly redirectUrl = REDIRECT;
  readonly clientMetadata: OAuthClientMetadata = { client_name: "Headless MCP client", redirect_uris: [REDIRECT], grant_types: ["authorization_code"], response_types: ["code"], token_endpoint_auth_method: "none" };
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info: OAuthClientInformationMixed) {
    this.client = info;
  }
  tokens() {
    return this.saved;
  }
  saveTokens(tokens: OAuthTokens) {
    this.saved = tokens;
  }
  redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

const backends = await availableBackends();

describe.each(backends.map((b) => [b.name, b] as [string, TestBackend]))("MCP endpoint as an OAuth 2.1 protected resource, Mandate as its authorization server (%s)", (_name, backend) => {
  let plane: ControlPlane;
  let cleanup: () => Promise<void>;
  let alice: TestUser;
  let tlsFetch: typeof fetch;

  /** A browser: keeps the cookies the control plane sets (the login page binds the sign-in to it). */
  const browser = () => {
    const jar = new Map<string, string>();
    return async (url: string, init: RequestInit = {}) => {
      const answer = await tlsFetch(url, { ...init, headers: { ...(init.headers as Record<string, string>), ...(jar.size ? { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") } : {}) } });
      const set = answer.headers.get("set-cookie");
      if (set) {
        const [pair] = set.split(";");
        const index = pair!.indexOf("=");
        jar.set(pair!.slice(0, index), pair!.slice(index + 1));
      }
      return answer;
    };
  };

  /** Plays the person at the login page: opens it, submits user, password and code, returns where the browser is sent. */
  const signIn = async (authorizationUrl: URL | string, user: TestUser, code = user.code(), open = browser()) => {
    const page = await open(String(authorizationUrl));
    const html = await page.text();
    expect(page.status, html).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
    expect(page.headers.get("set-cookie")).toMatch(/^mandate_oauth=[^;]+; Path=\/oauth; Secure; HttpOnly; SameSite=Lax/);
    const requestId = /name="request_id" value="([^"]+)"/.exec(html)?.[1];
    const answer = await open(`${plane.url}/oauth/authorize`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ request_id: requestId!, user: user.name, password: user.password, totp: code }).toString(),
    });
    return { status: answer.status, location: answer.headers.get("location"), body: await answer.text(), requestId: requestId!, html };
  };

  beforeAll(async () => {
    const created = await backend.create();
    cleanup = created.cleanup;
    plane = await startTestControlPlane({ dataDir: created.dataDir, storage: created.storage });
    await usePolicy(plane, ROLES);
    tlsFetch = fetchWithTls({ ca: plane.context.authority.x509AuthoritiesPem() });
    expect((await mandate("mcp", "servers", "add", "everything", "--command", `node ${EVERYTHING_BIN} stdio`, "--owner", "alice", "--data-dir", plane.dataDir)).code).toBe(0);
    alice = await addTestUser(plane.dataDir, "alice", ["sre"]);
  }, 60_000);
  afterAll(async () => {
    await plane?.close();
    await cleanup?.();
  });

  it("answers 401 with WWW-Authenticate naming RFC 9728 metadata, which names Mandate as the authorization server (RFC 8414)", async () => {
    const answer = await tlsFetch(`${plane.url}/mcp/everything`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(answer.status).toBe(401);
    const metadataUrl = `${plane.url}/.well-known/oauth-protected-resource/mcp/everything`;
    expect(answer.headers.get("www-authenticate")).toBe(`Bearer resource_metadata="${metadataUrl}"`);
    const resource = await (await tlsFetch(metadataUrl)).json();
    expect(resource).toMatchObject({ resource: `${plane.url}/mcp/everything`, authorization_servers: [plane.url], bearer_methods_supported: ["header"] });
    const as = await (await tlsFetch(`${plane.url}/.well-known/oauth-authorization-server`)).json();
    expect(as).toMatchObject({
      issuer: plane.url,
      authorization_endpoint: `${plane.url}/oauth/authorize`,
      token_endpoint: `${plane.url}/oauth/token`,
      registration_endpoint: `${plane.url}/oauth/register`,
      response_types_supported: ["code"],
      grant_types_supported: ["authorization_code", "refresh_token"],
      code_challenge_methods_supported: ["S256"],
    });
  });

  it("the official MCP SDK client registers, signs in as a Mandate user and calls tools as that user; the token never goes upstream", async () => {
    const provider = new HeadlessProvider();
    const url = new URL(`${plane.url}/mcp/everything`);
    const first = new Client({ name: "oauth-test", version: "1" });
    await expect(first.connect(new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: tlsFetch }))).rejects.toThrow(UnauthorizedError);
    expect(provider.client?.client_id).toMatch(/^mcp-/);
    const requested = Object.fromEntries(provider.authorizationUrl!.searchParams);
    expect(requested).toMatchObject({ response_type: "code", code_challenge_method: "S256", resource: `${plane.url}/mcp/everything`, redirect_uri: REDIRECT });

    const login = await signIn(provider.authorizationUrl!, alice);
    expect(login.status, login.body).toBe(303);
    const back = new URL(login.location!);
    expect(`${back.origin}${back.pathname}`).toBe(REDIRECT);
    expect(back.searchParams.get("iss")).toBe(plane.url);
    expect(back.searchParams.get("state")).toBe(requested.state ?? null);

    const transport = new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: tlsFetch });
    await transport.finishAuth(back.searchParams.get("code")!);
    expect(provider.saved?.access_token).toMatch(/^mandate_at_/);
    expect(provider.saved?.expires_in).toBe(3600);
    expect(provider.saved?.refresh_token).toMatch(/^mandate_rt_/);
    const client = new Client({ name: "oauth-test", version: "1" });
    await client.connect(new StreamableHTTPClientTransport(url, { authProvider: provider, fetch: tlsFetch }));
    const tools = await client.listTools();
    expect(tools.tools.map((t) => t.name)).toContain("echo");
    const result = await client.callTool({ name: "echo", arguments: { message: "hello from a person" } });
    expect(JSON.stringify(result.content)).toContain("hello from a person");
    await client.close();
    // Decided for alice herself (her role, no delegation), named by the OAuth token alone.
    const call = (await plane.context.audit.list({ type: "mcp.tool.call" })).find((e) => e.target?.name === "echo" && e.code === "INTENT")!;
    expect(call.actor).toMatchObject({ kind: "user", user: "alice", spiffeId: `spiffe://${plane.context.authority.trustDomain}/user/alice` });
    expect(call.decision).toMatchObject({ allow: true });
    expect(call.decision!.reasons.join("\n")).toContain("allowed: role sre of user alice allows mcp:everything/echo");
    expect(call.delegation).toBeUndefined();
    const events = await plane.context.audit.list({ limit: 500 });
    const types = new Set(events.map((e) => e.type));
    for (const type of ["oauth.client.register", "oauth.authorize", "oauth.token"]) expect(types).toContain(type);
    expect(JSON.stringify(events)).not.toContain(provider.saved!.access_token);
  });

  it("tokens are bound to one MCP server (RFC 8707): the same token is refused at another", async () => {
    expect((await mandate("mcp", "servers", "add", "other", "--command", `node ${EVERYTHING_BIN} stdio`, "--owner", "alice", "--data-dir", plane.dataDir)).code).toBe(0);
    const { token } = await obtainToken(alice.code(1));
    const at = (server: string) => tlsFetch(`${plane.url}/mcp/${server}`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) });
    expect((await at("everything")).status).not.toBe(401);
    const elsewhere = await at("other");
    expect(elsewhere.status).toBe(401);
    expect(await elsewhere.text()).toMatch(/issued for .*\/mcp\/everything, not for MCP server other/);
  });

  it("refresh tokens rotate; a spent one presented again revokes the whole sign-in", async () => {
    const dana = await addTestUser(plane.dataDir, "dana");
    const { client, verifier, code } = await obtainCode(dana);
    const post = async (form: Record<string, string>) => {
      const answer = await tlsFetch(`${plane.url}/oauth/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(form).toString() });
      return { status: answer.status, body: (await answer.json()) as Record<string, string> };
    };
    const first = await post({ grant_type: "authorization_code", code, client_id: client, redirect_uri: REDIRECT, code_verifier: verifier });
    expect(first.body.refresh_token).toMatch(/^mandate_rt_/);
    const second = await post({ grant_type: "refresh_token", refresh_token: first.body.refresh_token!, client_id: client });
    expect(second.status, JSON.stringify(second.body)).toBe(200);
    expect(second.body.refresh_token).not.toBe(first.body.refresh_token);
    const mcpStatus = async (token: string) =>
      (await tlsFetch(`${plane.url}/mcp/everything`, { method: "POST", headers: { "content-type": "application/json", accept: "application/json, text/event-stream", authorization: `Bearer ${token}` }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) })).status;
    expect(await mcpStatus(second.body.access_token!)).not.toBe(401);
    expect((await post({ grant_type: "refresh_token", refresh_token: second.body.refresh_token!, client_id: "mcp-someone-else" })).body.error).toBe("invalid_grant");
    // The first refresh token again: someone holds a copy. Everything from this sign-in dies.
    const reuse = await post({ grant_type: "refresh_token", refresh_token: first.body.refresh_token!, client_id: client });
    expect(reuse.body).toMatchObject({ error: "invalid_grant" });
    expect((await post({ grant_type: "refresh_token", refresh_token: second.body.refresh_token!, client_id: client })).body.error).toBe("invalid_grant");
    expect(await mcpStatus(second.body.access_token!)).toBe(401);
    expect(await mcpStatus(first.body.access_token!)).toBe(401);
    expect((await plane.context.audit.list({ type: "oauth.refresh_reuse", limit: 10 })).some((e) => e.target?.user === "dana")).toBe(true);
  });

  it("codes are single use and PKCE-bound; bad requests never redirect to an unregistered URI", async () => {
    const bob = await addTestUser(plane.dataDir, "bob");
    const { client, verifier, code } = await obtainCode(bob);
    const exchange = (form: Record<string, string>) =>
      tlsFetch(`${plane.url}/oauth/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(form).toString() });
    const base = { grant_type: "authorization_code", code, client_id: client, redirect_uri: REDIRECT, code_verifier: verifier };
    const wrongVerifier = await exchange({ ...base, code_verifier: "x".repeat(43) });
    expect(wrongVerifier.status).toBe(400);
    expect(await wrongVerifier.json()).toMatchObject({ error: "invalid_grant" });
    // The failed attempt spent the code.
    expect(await (await exchange(base)).json()).toMatchObject({ error: "invalid_grant" });
    expect(await (await exchange({ ...base, grant_type: "password" })).json()).toMatchObject({ error: "unsupported_grant_type" });

    const registered = await (await tlsFetch(`${plane.url}/oauth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ redirect_uris: [REDIRECT] }) })).json() as { client_id: string };
    const authorize = (params: Record<string, string>) => tlsFetch(`${plane.url}/oauth/authorize?${new URLSearchParams({ response_type: "code", client_id: registered.client_id, redirect_uri: REDIRECT, resource: `${plane.url}/mcp/everything`, ...params })}`);
    const noPkce = await authorize({ state: "s1" });
    expect(noPkce.status).toBe(303);
    const refused = new URL(noPkce.headers.get("location")!);
    expect(Object.fromEntries(refused.searchParams)).toMatchObject({ error: "invalid_request", state: "s1" });
    const plain = await authorize({ code_challenge: "a".repeat(43), code_challenge_method: "plain" });
    expect(new URL(plain.headers.get("location")!).searchParams.get("error")).toBe("invalid_request");
    const otherResource = await authorize({ code_challenge: "a".repeat(43), code_challenge_method: "S256", resource: "https://evil.example/mcp/x" });
    expect(new URL(otherResource.headers.get("location")!).searchParams.get("error")).toBe("invalid_target");
    const foreignRedirect = await authorize({ code_challenge: "a".repeat(43), code_challenge_method: "S256", redirect_uri: "https://evil.example/cb" });
    expect(foreignRedirect.status).toBe(400);
    expect(foreignRedirect.headers.get("location")).toBeNull();
    const badRegistration = await tlsFetch(`${plane.url}/oauth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ redirect_uris: ["http://evil.example/cb"] }) });
    expect(await badRegistration.json()).toMatchObject({ error: "invalid_redirect_uri" });
  });

  it("the login page refuses a wrong password (audited) and a disabled user's token stops working", async () => {
    const carol = await addTestUser(plane.dataDir, "carol");
    const { authorizationUrl } = await startAuthorization();
    const wrong = await signIn(authorizationUrl, { ...carol, password: "not-carols-password" });
    expect(wrong.status).toBe(401);
    expect(wrong.body).toContain("wrong user name, password or code");
    expect((await plane.context.audit.list({ type: "user.login", limit: 100 })).some((e) => e.target?.user === "carol" && e.details?.method === "oauth" && e.details?.reason === "bad_password")).toBe(true);
    // The same form posted from another browser (no cookie from the page) is refused.
    const page = await tlsFetch(authorizationUrl);
    const requestId = /name="request_id" value="([^"]+)"/.exec(await page.text())![1]!;
    const forged = await tlsFetch(`${plane.url}/oauth/authorize`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ request_id: requestId, user: "carol", password: carol.password, totp: carol.code() }).toString() });
    expect(forged.status).toBe(400);
    expect(await forged.text()).toMatch(/another browser/);
    const { token } = await obtainToken(carol.code(), carol);
    expect((await mandate("users", "update", "carol", "--disable", "--data-dir", plane.dataDir)).code).toBe(0);
    const answer = await tlsFetch(`${plane.url}/mcp/everything`, { method: "POST", headers: { "content-type": "application/json", authorization: `Bearer ${token}` }, body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) });
    expect(answer.status).toBe(401);
  });

  it("the login page offers SSO: the browser goes to the provider and back, bound to the browser that opened the page", async () => {
    process.env.MANDATE_TEST_WEB_SSO_SECRET = "web-client-secret";
    const op = await startOidcLoginProvider({
      clientId: "unused-native",
      accounts: { "00u-erin": { preferred_username: "erin", email: "erin@example.com", email_verified: true, groups: ["sre"] } },
      webClient: { clientId: "mandate-web", clientSecret: "web-client-secret", redirectUris: [`${plane.url}/oauth/sso/callback`] },
    });
    try {
      const d = ["--data-dir", plane.dataDir];
      const added = await mandate("sso", "add", "corp", "--issuer", op.issuer, "--client-id", "mandate-web", "--client-secret-env", "MANDATE_TEST_WEB_SSO_SECRET", "--scopes", "openid,profile,email,groups", "--claim-roles", "groups", "--role-map", "sre=sre", ...d);
      expect(added.code, added.stderr).toBe(0);
      const started = await startAuthorization();
      const open = browser();
      const html = await (await open(started.authorizationUrl)).text();
      expect(html).toContain("Sign in with corp");
      const requestId = /name="request_id" value="([^"]+)"/.exec(html)![1]!;
      const toProvider = await open(`${plane.url}/oauth/sso`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ request_id: requestId, provider: "corp" }).toString() });
      expect(toProvider.status).toBe(303);
      const providerUrl = new URL(toProvider.headers.get("location")!);
      expect(providerUrl.origin).toBe(op.issuer);
      expect(providerUrl.searchParams.get("redirect_uri")).toBe(`${plane.url}/oauth/sso/callback`);
      const callback = await op.authorize(providerUrl.toString(), "00u-erin");
      expect(callback.startsWith(`${plane.url}/oauth/sso/callback?`)).toBe(true);
      // The provider's answer replayed from another browser is refused, and spends the SSO login.
      const elsewhere = await tlsFetch(callback);
      expect(elsewhere.status).toBe(401);
      expect(await elsewhere.text()).toMatch(/another browser/);

      const again = await startAuthorization();
      const html2 = await (await open(again.authorizationUrl)).text();
      const requestId2 = /name="request_id" value="([^"]+)"/.exec(html2)![1]!;
      const toProvider2 = await open(`${plane.url}/oauth/sso`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams({ request_id: requestId2, provider: "corp" }).toString() });
      const back = await open(await op.authorize(toProvider2.headers.get("location")!, "00u-erin"));
      expect(back.status, await back.clone().text()).toBe(303);
      const code = new URL(back.headers.get("location")!).searchParams.get("code")!;
      const tokens = await tlsFetch(`${plane.url}/oauth/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "authorization_code", code, client_id: again.client, redirect_uri: REDIRECT, code_verifier: again.verifier }).toString(),
      });
      const { access_token } = (await tokens.json()) as { access_token: string };
      const client = new Client({ name: "sso-test", version: "1" });
      await client.connect(new StreamableHTTPClientTransport(new URL(`${plane.url}/mcp/everything`), { fetch: tlsFetch, requestInit: { headers: { authorization: `Bearer ${access_token}` } } }));
      await client.listTools();
      await client.close();
      // The listing is recorded as erin's, named by the OAuth token of the SSO sign-in (list records are written shortly after).
      await eventually(async () => {
        const listed = (await plane.context.audit.list({ type: "mcp.tool.list" })).find((e) => e.actor.user === "erin");
        expect(listed?.actor).toMatchObject({ kind: "user", user: "erin", spiffeId: `spiffe://${plane.context.authority.trustDomain}/user/erin` });
      });
      expect(await plane.context.users!.get("erin")).toMatchObject({ roles: ["sre"] });
      const authorized = (await plane.context.audit.list({ type: "oauth.authorize", limit: 50 })).find((e) => e.actor.user === "erin");
      expect(authorized?.details).toMatchObject({ method: "sso", provider: "corp" });
    } finally {
      await op.close();
      delete process.env.MANDATE_TEST_WEB_SSO_SECRET;
    }
  });

  async function startAuthorization() {
    const registered = await (await tlsFetch(`${plane.url}/oauth/register`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ redirect_uris: [REDIRECT], client_name: "raw" }) })).json() as { client_id: string };
    const verifier = "v".repeat(20) + Math.random().toString(36).slice(2).padEnd(30, "x");
    const { createHash } = await import("node:crypto");
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const authorizationUrl = `${plane.url}/oauth/authorize?${new URLSearchParams({ response_type: "code", client_id: registered.client_id, redirect_uri: REDIRECT, code_challenge: challenge, code_challenge_method: "S256", resource: `${plane.url}/mcp/everything`, state: "st" })}`;
    return { client: registered.client_id as string, verifier, authorizationUrl };
  }

  async function obtainCode(user: TestUser, totpCode = user.code()) {
    const started = await startAuthorization();
    const login = await signIn(started.authorizationUrl, user, totpCode);
    expect(login.status, login.body).toBe(303);
    return { ...started, code: new URL(login.location!).searchParams.get("code")! };
  }

  async function obtainToken(totpCode: string, user: TestUser = alice) {
    const { client, verifier, code } = await obtainCode(user, totpCode);
    const answer = await tlsFetch(`${plane.url}/oauth/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code, client_id: client, redirect_uri: REDIRECT, code_verifier: verifier }).toString(),
    });
    const body = (await answer.json()) as { access_token: string };
    expect(answer.status, JSON.stringify(body)).toBe(200);
    return { token: body.access_token as string };
  }
});
