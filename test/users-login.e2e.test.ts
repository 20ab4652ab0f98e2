import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyAndCsr } from "../src/agent/csr.js";
import { MandateClient } from "../src/client/http-client.js";
import { readIdentityFile } from "../src/client/identity-file.js";
import type { ControlPlane } from "../src/server/index.js";
import { withUserClient } from "../src/cli/user-client.js";
import { type TestBackend, availableBackends } from "./helpers/backends.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { addTestUser, loginTestUser, mandateWithInput } from "./helpers/users.js";

const exec = promisify(execFile);
const backends = await availableBackends();

const splitPem = (pem: string) => pem.split(/(?<=-----END CERTIFICATE-----\n)/).filter((p) => p.includes("BEGIN"));

describe.each(backends.map((b) => [b.name, b] as [string, TestBackend]))("users and login (%s)", (_name, backend) => {
  let plane: ControlPlane;
  let work: string;
  let cleanup: () => Promise<void>;
  let pin: string;
  let td: string;

  beforeAll(async () => {
    const created = await backend.create();
    cleanup = created.cleanup;
    work = await tempDir();
    plane = await startTestControlPlane({ dataDir: created.dataDir, storage: created.storage, users: { limits: { perUser: 3, perAddress: 1000, windowSeconds: 600, blockSeconds: 600 } } });
    pin = plane.context.authority.caPin;
    td = plane.context.authority.trustDomain;
  });
  afterAll(async () => {
    await plane?.close();
    await cleanup?.();
    await rm(work, { recursive: true, force: true });
  });

  const admin = (...args: string[]) => mandate(...args, "--data-dir", plane.dataDir);
  const events = async (type: string) => (await plane.context.audit.list({ type, limit: 500 })) as unknown as { code: string; target?: Record<string, unknown>; details?: Record<string, unknown>; actor: Record<string, unknown> }[];

  it("users add prints a one-time password and the TOTP enrolment once; ls and show list the user", async () => {
    const added = await admin("users", "add", "erin", "--roles", "sre,oncall", "--labels", "team=payments");
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toMatch(/One-time password[^\n]*\n\n {2}[A-HJ-NP-Za-km-z2-9]{20}\n/);
    expect(added.stdout).toMatch(/otpauth:\/\/totp\/Mandate%20\(.+\):erin\?secret=[A-Z2-7]{32}&/);
    expect(added.stdout).toContain(`--ca-pin ${pin}`);
    const list = await admin("users", "ls", "--format", "json");
    expect(list.json()).toEqual([expect.objectContaining({ name: "erin", roles: ["sre", "oncall"], labels: { team: "payments" }, disabled: false, source: "local", spiffeId: `spiffe://${td}/user/erin` })]);
    const shown = await admin("users", "show", "erin", "--format", "json");
    // The secrets are never shown again.
    expect(JSON.stringify(shown.json())).not.toMatch(/secret|password_hash|\$scrypt/);
    const again = await admin("users", "add", "erin");
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("ALREADY_EXISTS");
    const weak = await mandateWithInput(["short"], "users", "add", "weak", "--password-stdin", "--data-dir", plane.dataDir);
    expect(weak.stderr).toMatch(/at least 12 characters/);
  });

  it("logs in with password + TOTP: a P-256 key made here, a user certificate that openssl verifies against the bundle", async () => {
    const alice = await addTestUser(plane.dataDir, "alice", ["sre"]);
    const identityPath = join(work, "alice.json");
    const result = await loginTestUser(plane.url, pin, alice, identityPath);
    expect(result.code, result.stderr).toBe(0);
    expect(result.json()).toMatchObject({ spiffeId: `spiffe://${td}/user/alice`, user: { name: "alice", roles: ["sre"] } });
    expect((await stat(identityPath)).mode & 0o777).toBe(0o600);
    const identity = await readIdentityFile(identityPath);
    expect(identity.spiffeId).toBe(`spiffe://${td}/user/alice`);
    const [leaf, intermediate] = splitPem(identity.certPem);
    const cert = new X509Certificate(leaf!);
    expect(cert.subjectAltName).toBe(`URI:spiffe://${td}/user/alice`);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    const lifetimeH = (new Date(cert.validTo).getTime() - Date.now()) / 3600_000;
    expect(lifetimeH).toBeGreaterThan(7.9);
    expect(lifetimeH).toBeLessThanOrEqual(8);
    await writeFile(join(work, "leaf.pem"), leaf!);
    await writeFile(join(work, "intermediate.pem"), intermediate!);
    await writeFile(join(work, "bundle.pem"), identity.bundlePem);
    const verified = await exec("openssl", ["verify", "-CAfile", join(work, "bundle.pem"), "-untrusted", join(work, "intermediate.pem"), join(work, "leaf.pem")]);
    expect(verified.stdout).toContain(": OK");

    const whoami = await mandate("whoami", "--identity", identityPath, "--format", "json");
    expect(whoami.code, whoami.stderr).toBe(0);
    expect(whoami.json()).toMatchObject({ spiffeId: `spiffe://${td}/user/alice`, user: { name: "alice", roles: ["sre"] } });
    const ok = (await events("user.login")).find((e) => e.code === "OK" && e.target?.user === "alice");
    expect(ok?.details).toMatchObject({ method: "password", roles: ["sre"] });
    expect(ok?.actor).toMatchObject({ kind: "user", user: "alice" });
    // The registry is what delegation resolves user principals with.
    expect(await plane.context.users!.get("alice")).toEqual({ name: "alice", roles: ["sre"], labels: {}, disabled: false });
    expect(await plane.context.users!.get("nobody")).toBeUndefined();
  });

  it("a second login reuses the pinned bundle of the first (no --ca-pin), --ttl is capped by the server", async () => {
    const frank = await addTestUser(plane.dataDir, "frank");
    const identityPath = join(work, "frank.json");
    expect((await loginTestUser(plane.url, pin, frank, identityPath)).code).toBe(0);
    const second = await mandateWithInput([frank.password], "login", "--user", "frank", "--password-stdin", "--totp", frank.code(1), "--identity", identityPath, "--ttl", "30d", "--format", "json");
    expect(second.code, second.stderr).toBe(0);
    const hours = (new Date(second.json().expiresAt).getTime() - Date.now()) / 3600_000;
    expect(hours).toBeLessThanOrEqual(12);
    expect(hours).toBeGreaterThan(11.9);
    const noPin = await mandateWithInput([frank.password], "login", "--auth-server", plane.url, "--user", "frank", "--password-stdin", "--totp", "000000", "--identity", join(work, "none.json"));
    expect(noPin.stderr).toMatch(/--ca-pin/);
    const wrongPin = await mandateWithInput([frank.password], "login", "--auth-server", plane.url, "--ca-pin", `sha256:${"0".repeat(64)}`, "--user", "frank", "--password-stdin", "--totp", "000000", "--identity", join(work, "none.json"));
    expect(wrongPin.stderr).toContain("CA_PIN_MISMATCH");
  });

  it("refuses a wrong password, a wrong code and a replayed code; audits each with a reason and never the secret", async () => {
    const bob = await addTestUser(plane.dataDir, "bob", ["viewer"]);
    const wrongPassword = await loginTestUser(plane.url, pin, { ...bob, password: "not-the-password-at-all" }, join(work, "bob.json"));
    expect(wrongPassword.code).toBe(1);
    expect(wrongPassword.stderr).toContain("LOGIN_FAILED");
    const wrongCode = await loginTestUser(plane.url, pin, bob, join(work, "bob.json"), [], bob.code(5));
    expect(wrongCode.stderr).toContain("LOGIN_FAILED");
    const code = bob.code();
    expect((await loginTestUser(plane.url, pin, bob, join(work, "bob.json"), [], code)).code).toBe(0);
    const replayed = await loginTestUser(plane.url, pin, bob, join(work, "bob2.json"), [], code);
    expect(replayed.code).toBe(1);
    expect(replayed.stderr).toMatch(/already used/);
    const unknown = await loginTestUser(plane.url, pin, { ...bob, name: "mallory" }, join(work, "m.json"));
    expect(unknown.stderr).toContain("wrong user name, password or code");
    const reasons = (await events("user.login")).filter((e) => e.target?.user === "bob" || e.target?.user === "mallory").map((e) => `${e.target?.user}:${e.code}:${e.details?.reason ?? "-"}`);
    expect(reasons).toEqual(expect.arrayContaining(["bob:LOGIN_FAILED:bad_password", "bob:LOGIN_FAILED:bad_totp", "bob:OK:-", "bob:LOGIN_FAILED:totp_replayed", "mallory:LOGIN_FAILED:unknown_user"]));
    const everything = JSON.stringify(await plane.context.audit.list({ limit: 1000 }));
    expect(everything).not.toContain(bob.password);
    expect(everything).not.toContain("not-the-password-at-all");
    expect(everything).not.toContain(code);
  });

  it("two logins racing with one TOTP code: exactly one gets a certificate", async () => {
    const kim = await addTestUser(plane.dataDir, "kim");
    const code = kim.code();
    const client = new MandateClient(plane.url, { caPem: plane.context.authority.x509AuthoritiesPem() });
    try {
      const attempts = await Promise.allSettled(
        Array.from({ length: 4 }, async () => {
          const { csrPem } = await generateKeyAndCsr();
          return client.request("POST", "/v1/login", { user: "kim", password: kim.password, totp: code, csr: csrPem });
        }),
      );
      expect(attempts.filter((a) => a.status === "fulfilled")).toHaveLength(1);
      for (const refused of attempts.filter((a) => a.status === "rejected")) expect((refused as PromiseRejectedResult).reason.message).toMatch(/already used/);
    } finally {
      client.close();
    }
  });

  it("a disabled user cannot log in and its live certificate is locked; enabling lets it log in again", async () => {
    const dan = await addTestUser(plane.dataDir, "dan");
    const identityPath = join(work, "dan.json");
    expect((await loginTestUser(plane.url, pin, dan, identityPath)).code).toBe(0);
    const disabled = await admin("users", "update", "dan", "--disable", "--format", "json");
    expect(disabled.code, disabled.stderr).toBe(0);
    expect(disabled.json().locks).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 300));
    const whoami = await mandate("whoami", "--identity", identityPath);
    expect(whoami.stderr).toContain("LOCKED");
    const refused = await loginTestUser(plane.url, pin, dan, join(work, "dan2.json"), [], dan.code(1));
    expect(refused.stderr).toMatch(/disabled/);
    expect((await admin("users", "update", "dan", "--enable")).code).toBe(0);
    const again = await loginTestUser(plane.url, pin, dan, join(work, "dan3.json"), [], dan.code(1));
    expect(again.code, again.stderr).toBe(0);
  });

  it("a user locked with `mandate locks add --spiffe-id` cannot log in or use its certificate", async () => {
    const carol = await addTestUser(plane.dataDir, "carol");
    const identityPath = join(work, "carol.json");
    expect((await loginTestUser(plane.url, pin, carol, identityPath)).code).toBe(0);
    const lock = await admin("locks", "add", "--spiffe-id", `spiffe://${td}/user/carol`, "--reason", "laptop stolen", "--format", "json");
    expect(lock.code, lock.stderr).toBe(0);
    const whoami = await mandate("whoami", "--identity", identityPath);
    expect(whoami.stderr).toContain("LOCKED");
    const refused = await loginTestUser(plane.url, pin, carol, join(work, "carol2.json"), [], carol.code(1));
    expect(refused.stderr).toMatch(/locked: laptop stolen/);
    expect((await events("user.login")).some((e) => e.target?.user === "carol" && e.details?.reason === "locked")).toBe(true);
  });

  it("rate-limits failed logins per user: once over the limit even the right password is refused", async () => {
    const gina = await addTestUser(plane.dataDir, "gina");
    for (let i = 0; i < 3; i++) expect((await loginTestUser(plane.url, pin, { ...gina, password: `wrong-password-${i}!` }, join(work, "g.json"))).code).toBe(1);
    const blocked = await loginTestUser(plane.url, pin, gina, join(work, "g.json"));
    expect(blocked.stderr).toContain("RATE_LIMITED");
    expect((await events("user.login")).some((e) => e.target?.user === "gina" && e.details?.reason === "rate_limited")).toBe(true);
  });

  it("an expired user certificate is refused by the server and by openssl; the CLI says to log in again", async () => {
    const hank = await addTestUser(plane.dataDir, "hank");
    const identityPath = join(work, "hank.json");
    expect((await loginTestUser(plane.url, pin, hank, identityPath, ["--ttl", "1s"])).code).toBe(0);
    await new Promise((r) => setTimeout(r, 1500));
    const identity = JSON.parse(await readFile(identityPath, "utf8"));
    const client = new MandateClient(plane.url, { caPem: identity.bundlePem, certPem: identity.certPem, keyPem: identity.keyPem });
    await expect(client.request("GET", "/v1/users/me")).rejects.toThrow(/CERT_HAS_EXPIRED|expired/);
    client.close();
    await writeFile(join(work, "expired.pem"), splitPem(identity.certPem)[0]!);
    await writeFile(join(work, "expired-int.pem"), splitPem(identity.certPem)[1]!);
    const verify = await exec("openssl", ["verify", "-CAfile", join(work, "bundle.pem"), "-untrusted", join(work, "expired-int.pem"), join(work, "expired.pem")]).catch((e: { stdout: string; stderr: string }) => e);
    expect(`${verify.stdout}${verify.stderr}`).toMatch(/certificate has expired/);
    const whoami = await mandate("whoami", "--identity", identityPath);
    expect(whoami.stderr).toMatch(/expired.*run `mandate login`/);
    await expect(withUserClient({ identity: identityPath }, async () => undefined)).rejects.toMatchObject({ code: "SESSION_EXPIRED" });
    await expect(withUserClient({ identity: join(work, "missing.json") }, async () => undefined)).rejects.toThrow(/run `mandate login/);
  });

  it("logout locks the certificate on the server and removes the file; a copy is dead", async () => {
    const ivy = await addTestUser(plane.dataDir, "ivy");
    const identityPath = join(work, "ivy.json");
    expect((await loginTestUser(plane.url, pin, ivy, identityPath)).code).toBe(0);
    const copy = await readFile(identityPath, "utf8");
    const out = await mandate("logout", "--identity", identityPath, "--format", "json");
    expect(out.code, out.stderr).toBe(0);
    expect(out.json().locked).toBe(true);
    await expect(stat(identityPath)).rejects.toThrow();
    await writeFile(join(work, "ivy-copy.json"), copy, { mode: 0o600 });
    expect((await mandate("whoami", "--identity", join(work, "ivy-copy.json"))).stderr).toContain("LOCKED");
  });

  it("users update changes roles and resets credentials; rm removes the user and locks its certificates", async () => {
    const jack = await addTestUser(plane.dataDir, "jack", ["viewer"]);
    const identityPath = join(work, "jack.json");
    expect((await loginTestUser(plane.url, pin, jack, identityPath)).code).toBe(0);
    expect((await admin("users", "update", "jack", "--roles", "viewer,sre", "--format", "json")).json().user.roles).toEqual(["viewer", "sre"]);
    const reset = await admin("users", "update", "jack", "--reset-totp", "--reset-password", "--format", "json");
    expect(reset.json().password).toMatch(/^.{20}$/);
    expect(reset.json().totp.uri).toMatch(/^otpauth:\/\/totp\//);
    // The old TOTP secret no longer works.
    const old = await loginTestUser(plane.url, pin, { ...jack, password: reset.json().password }, join(work, "jack2.json"), [], jack.code(1));
    expect(old.stderr).toContain("LOGIN_FAILED");
    const removed = await admin("users", "rm", "jack", "--format", "json");
    expect(removed.json().locks.length).toBeGreaterThanOrEqual(1);
    expect((await mandate("whoami", "--identity", identityPath)).stderr).toContain("LOCKED");
    expect((await admin("users", "show", "jack")).stderr).toContain("NOT_FOUND");
    const types = new Set((await plane.context.audit.list({ limit: 1000 })).map((e: { type: string }) => e.type));
    for (const t of ["user.create", "user.update", "user.delete", "user.logout"]) expect(types).toContain(t);
  });
});
