import { rm } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyAndCsr } from "../src/agent/csr.js";
import { useBrowserOpener } from "../src/cli/browser.js";
import { MandateClient } from "../src/client/http-client.js";
import type { ControlPlane } from "../src/server/index.js";
import { type TestBackend, availableBackends, tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { type OidcLoginProvider, startOidcLoginProvider } from "./helpers/oidc-login.js";
import { addTestUser } from "./helpers/users.js";

const backends = await availableBackends();
const SECRET_ENV = "MANDATE_TEST_SSO_CLIENT_SECRET";
const CLIENT_SECRET = "sso-client-secret-only-the-control-plane-knows";

describe.each(backends.map((b) => [b.name, b] as [string, TestBackend]))("SSO login through a real OpenID provider (%s)", (_name, backend) => {
  let plane: ControlPlane;
  let op: OidcLoginProvider;
  let work: string;
  let cleanup: () => Promise<void>;
  let pin: string;
  const seenUrls: string[] = [];

  beforeAll(async () => {
    process.env[SECRET_ENV] = CLIENT_SECRET;
    op = await startOidcLoginProvider({
      clientId: "mandate-cli",
      clientSecret: CLIENT_SECRET,
      accounts: {
        "00u-alice": { preferred_username: "Alice", email: "alice@example.com", email_verified: true, groups: ["platform-sre", "everyone"] },
        "00u-eve": { preferred_username: "eve", email: "eve@evil.test", email_verified: true, groups: ["platform-sre"] },
        "00u-unverified": { preferred_username: "uma", email: "uma@example.com", email_verified: false },
        "00u-squatter": { preferred_username: "bob", email: "bob@example.com", email_verified: true },
        "00u-dora": { preferred_username: "dora", email: "dora@example.com", email_verified: true, groups: ["auditors"] },
      },
    });
    const created = await backend.create();
    cleanup = created.cleanup;
    work = await tempDir();
    plane = await startTestControlPlane({ dataDir: created.dataDir, storage: created.storage });
    pin = plane.context.authority.caPin;
  });
  afterAll(async () => {
    await plane?.close();
    await op?.close();
    await cleanup?.();
    await rm(work, { recursive: true, force: true });
    delete process.env[SECRET_ENV];
  });

  const admin = (...args: string[]) => mandate(...args, "--data-dir", plane.dataDir);
  /** `mandate login --sso corp`, with the test playing the browser as `account`. */
  const ssoLogin = async (account: string, identity: string, tamper: (callback: string) => string = (c) => c) => {
    const restore = useBrowserOpener(async (url) => {
      seenUrls.push(url);
      const callback = await op.authorize(url, account);
      await fetch(tamper(callback));
    });
    try {
      return await mandate("login", "--auth-server", plane.url, "--ca-pin", pin, "--sso", "corp", "--identity", identity, "--format", "json");
    } finally {
      restore();
    }
  };

  it("sso add checks discovery; ls lists the provider without any secret", async () => {
    const bad = await admin("sso", "add", "typo", "--issuer", `${op.issuer}/nope`, "--client-id", "x");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/discovery/);
    const added = await admin(
      "sso", "add", "corp", "--issuer", op.issuer, "--client-id", "mandate-cli", "--client-secret-env", SECRET_ENV,
      "--scopes", "openid,profile,email,groups", "--claim-roles", "groups", "--role-map", "platform-sre=sre", "--role-map", "auditors=auditor,viewer", "--allow-email-domain", "example.com",
    );
    expect(added.code, added.stderr).toBe(0);
    const list = await admin("sso", "ls", "--format", "json");
    expect(list.json()).toEqual([expect.objectContaining({ name: "corp", issuer: op.issuer, clientSecretEnv: SECRET_ENV, roleMap: { "platform-sre": ["sre"], auditors: ["auditor", "viewer"] } })]);
    expect(list.stdout).not.toContain(CLIENT_SECRET);
  });

  it("logs in end to end (code flow, PKCE S256, state, nonce): the user is provisioned with mapped roles and gets a user certificate", async () => {
    const identity = join(work, "alice.json");
    const result = await ssoLogin("00u-alice", identity);
    expect(result.code, result.stderr).toBe(0);
    expect(result.json()).toMatchObject({ spiffeId: `spiffe://${plane.context.authority.trustDomain}/user/alice`, user: { name: "alice", roles: ["sre"] } });
    const url = new URL(seenUrls.at(-1)!);
    expect(url.origin).toBe(op.issuer);
    expect(Object.fromEntries(url.searchParams)).toMatchObject({ response_type: "code", client_id: "mandate-cli", code_challenge_method: "S256", scope: "openid profile email groups" });
    for (const p of ["state", "nonce", "code_challenge"]) expect(url.searchParams.get(p)!.length).toBeGreaterThanOrEqual(43);
    expect(url.searchParams.get("redirect_uri")).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callback$/);
    const whoami = await mandate("whoami", "--identity", identity, "--format", "json");
    expect(whoami.json().user).toMatchObject({ name: "alice", source: "sso", ssoProvider: "corp", email: "alice@example.com", roles: ["sre"] });
    const events = await plane.context.audit.list({ type: "user.login", limit: 100 });
    const ok = events.find((e) => e.code === "OK" && e.target?.user === "alice");
    expect(ok?.details).toMatchObject({ method: "sso", provider: "corp", subject: "00u-alice", groups: ["platform-sre"], provisioned: true });
    expect(JSON.stringify(events)).not.toContain(CLIENT_SECRET);
    // A second login finds the same user by subject.
    const again = await ssoLogin("00u-alice", join(work, "alice2.json"));
    expect(again.code, again.stderr).toBe(0);
    expect((await plane.context.audit.list({ type: "user.login", limit: 100 })).filter((e) => e.code === "OK" && e.target?.user === "alice").at(0)?.details?.provisioned).toBe(false);
    expect((await plane.context.users!.get("alice"))?.roles).toEqual(["sre"]);
  });

  it("maps several roles from one group; refuses emails outside the allowed domain and unverified emails", async () => {
    const dora = await ssoLogin("00u-dora", join(work, "dora.json"));
    expect(dora.json().user.roles).toEqual(["auditor", "viewer"]);
    const eve = await ssoLogin("00u-eve", join(work, "eve.json"));
    expect(eve.code).toBe(1);
    expect(eve.stderr).toMatch(/email domain .{1,3}evil\.test.{1,3} is not allowed/);
    const uma = await ssoLogin("00u-unverified", join(work, "uma.json"));
    expect(uma.stderr).toMatch(/not verified/);
    expect(await plane.context.users!.get("eve")).toBeUndefined();
  });

  it("never takes over a local user's name; a disabled SSO user cannot log in", async () => {
    await addTestUser(plane.dataDir, "bob");
    const squat = await ssoLogin("00u-squatter", join(work, "squat.json"));
    expect(squat.code).toBe(1);
    expect(squat.stderr).toMatch(/belongs to another account/);
    expect((await plane.context.audit.list({ type: "user.login", limit: 100 })).some((e) => e.details?.reason === "name_taken")).toBe(true);
    expect((await admin("users", "update", "dora", "--disable")).code).toBe(0);
    const disabled = await ssoLogin("00u-dora", join(work, "dora2.json"));
    expect(disabled.stderr).toMatch(/disabled/);
    expect((await admin("users", "update", "dora", "--reset-totp")).stderr).toMatch(/logs in through SSO/);
  });

  it("a callback with another state is ignored by the CLI; a login id and its code are good once", async () => {
    const forged = await ssoLogin("00u-alice", join(work, "forged.json"), (callback) => callback.replace(/state=[^&]+/, "state=forged"));
    expect(forged.code).toBe(1);
    expect(forged.stderr).toMatch(/state does not match/);

    const { keyPem: _k, csrPem } = await generateKeyAndCsr();
    const client = new MandateClient(plane.url, { caPem: plane.context.authority.x509AuthoritiesPem() });
    try {
      const redirectUri = "http://127.0.0.1:9/callback";
      const start = await client.request<{ loginId: string; authorizationUrl: string }>("POST", "/v1/login/sso/start", { provider: "corp", redirectUri });
      const callback = new URL(await op.authorize(start.authorizationUrl, "00u-alice"));
      const body = { loginId: start.loginId, state: callback.searchParams.get("state")!, code: callback.searchParams.get("code")!, csr: csrPem };
      await expect(client.request("POST", "/v1/login/sso/finish", { ...body, state: "x".repeat(43) })).rejects.toMatchObject({ code: "LOGIN_FAILED" });
      // The failed attempt consumed the login: the right state now finds nothing either.
      await expect(client.request("POST", "/v1/login/sso/finish", body)).rejects.toThrow(/unknown or expired login/);
      await expect(client.request("POST", "/v1/login/sso/start", { provider: "corp", redirectUri: "https://attacker.example/cb" })).rejects.toMatchObject({ code: "INVALID_ARGUMENT" });
      await expect(client.request("POST", "/v1/login/sso/start", { provider: "nope", redirectUri })).rejects.toMatchObject({ code: "NOT_FOUND" });
    } finally {
      client.close();
    }
  });

  it("sso rm removes the provider; its users can no longer log in through it", async () => {
    expect((await admin("sso", "rm", "corp")).code).toBe(0);
    const result = await ssoLogin("00u-alice", join(work, "after-rm.json"));
    expect(result.stderr).toContain("NOT_FOUND");
  });
});
