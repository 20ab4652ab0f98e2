import { execFile } from "node:child_process";
import { X509Certificate, generateKeyPairSync } from "node:crypto";
import { readFile, rm, stat, writeFile } from "node:fs/promises";
import { request } from "node:https";
import { join } from "node:path";
import { promisify } from "node:util";
import * as jose from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readCredentials } from "../src/agent/index.js";
import { readIdentityFile } from "../src/client/identity-file.js";
import type { ControlPlane } from "../src/server/index.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";

const exec = promisify(execFile);

/** A raw HTTPS call that trusts the pinned bundle and may present a client certificate. */
function rawRequest(url: string, options: { method?: string; body?: string | Buffer; ca: string; cert?: string; key?: string; headers?: Record<string, string> }): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? "POST", ca: options.ca, cert: options.cert, key: options.key, headers: { "content-type": "application/json", ...options.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* keep text */
        }
        resolve({ status: res.statusCode ?? 0, body });
      });
    });
    req.on("error", reject);
    req.end(options.body);
  });
}

describe("foundation, end to end on the embedded default", () => {
  let plane: ControlPlane;
  let dataDir: string;
  let work: string;
  let token: string;
  let creds: string;
  let caPem: string;

  beforeAll(async () => {
    dataDir = await tempDir();
    work = await tempDir();
    plane = await startTestControlPlane({ dataDir });
    caPem = (await readIdentityFile(plane.adminIdentityPath)).bundlePem;
    creds = join(work, "creds");
  });
  afterAll(async () => {
    await plane?.close();
    await rm(work, { recursive: true, force: true });
    await rm(dataDir, { recursive: true, force: true });
  });

  it("registers an agent and prints a join token (json for scripts)", async () => {
    const result = await mandate("agents", "add", "deploy-auditor", "--role", "incident-reader", "--labels", "env=prod,team=sre", "--data-dir", dataDir, "--format", "json");
    expect(result.code, result.stderr).toBe(0);
    const body = result.json();
    expect(body.token).toMatch(/^mj1\./);
    expect(body.agent.spiffeId).toBe("spiffe://mandate.local/agent/deploy-auditor");
    expect(body.agent.labels).toEqual({ env: "prod", team: "sre" });
    expect(new Date(body.expiresAt).getTime() - Date.now()).toBeGreaterThan(29 * 60_000);
    token = body.token;

    const human = await mandate("agents", "ls", "--data-dir", dataDir);
    expect(human.stdout).toContain("deploy-auditor");
    expect(human.stdout).toContain("incident-reader");
  });

  it("joins with the token: key made locally, files written, key 0600, chain verifies with openssl", async () => {
    const result = await mandate("daemon", "--auth-server", plane.url, "--join-token", token, "--out", creds, "--oneshot");
    expect(result.code, result.stderr).toBe(0);
    const keyMode = (await stat(join(creds, "svid_key.pem"))).mode & 0o777;
    expect(keyMode).toBe(0o600);
    const svidPem = await readFile(join(creds, "svid.pem"), "utf8");
    expect(svidPem.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    const jwtBundle = JSON.parse(await readFile(join(creds, "jwt_bundle.json"), "utf8"));
    expect(jwtBundle.keys.length).toBeGreaterThan(0);
    expect(jwtBundle.keys.every((k: { use: string }) => k.use === "jwt-svid")).toBe(true);

    const [leafPem, intermediatePem] = svidPem.split(/(?<=-----END CERTIFICATE-----\n)/);
    await writeFile(join(work, "leaf.pem"), leafPem!);
    await writeFile(join(work, "intermediate.pem"), intermediatePem!);
    const rootOnly = caPem.split(/(?<=-----END CERTIFICATE-----\n)/)[0]!;
    await writeFile(join(work, "root.pem"), rootOnly);
    const verify = await exec("openssl", ["verify", "-CAfile", join(work, "root.pem"), "-untrusted", join(work, "intermediate.pem"), join(work, "leaf.pem")]);
    expect(verify.stdout).toContain(": OK");
    const verifyBundle = await exec("openssl", ["verify", "-CAfile", join(creds, "bundle.pem"), "-untrusted", join(work, "intermediate.pem"), join(work, "leaf.pem")]);
    expect(verifyBundle.stdout).toContain(": OK");
    const text = (await exec("openssl", ["x509", "-in", join(work, "leaf.pem"), "-noout", "-text"])).stdout;
    expect(text).toContain("URI:spiffe://mandate.local/agent/deploy-auditor");
    expect(text).toMatch(/X509v3 Subject Alternative Name: critical/);
    expect(text).toMatch(/CA:FALSE/);

    // The private key never left: the certificate's key is the one on disk.
    const leaf = new X509Certificate(leafPem!);
    const key = await readFile(join(creds, "svid_key.pem"), "utf8");
    expect(leaf.checkPrivateKey((await import("node:crypto")).createPrivateKey(key))).toBe(true);
    const lifetime = new Date(leaf.validTo).getTime() - new Date(leaf.validFrom).getTime();
    expect(lifetime).toBeLessThanOrEqual(3600_000 + 60_000);
    expect(lifetime).toBeGreaterThanOrEqual(3600_000);
  });

  it("refuses a reused join token", async () => {
    const result = await mandate("daemon", "--auth-server", plane.url, "--join-token", token, "--out", join(work, "again"), "--oneshot");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("JOIN_TOKEN_USED");
  });

  it("renews with the current SVID over mTLS, not with the token", async () => {
    const before = await readCredentials(creds);
    const result = await mandate("daemon", "--out", creds, "--oneshot");
    expect(result.code, result.stderr).toBe(0);
    const after = await readCredentials(creds);
    expect(after!.state.serial).not.toBe(before!.state.serial);
    expect(after!.state.instanceId).toBe(before!.state.instanceId);
    const show = await mandate("agents", "show", "deploy-auditor", "--data-dir", dataDir, "--format", "json");
    expect(show.json().instances[0].generation).toBe(2);
  });

  it("mints a JWT-SVID that jose verifies against the served SPIFFE bundle", async () => {
    const result = await mandate("svid", "jwt", "--audience", "mcp.example", "--out", creds);
    expect(result.code, result.stderr).toBe(0);
    const jwt = result.stdout.trim();
    const bundle = await rawRequest(`${plane.url}/.well-known/spiffe-bundle`, { method: "GET", ca: caPem });
    expect(bundle.status).toBe(200);
    expect(typeof bundle.body.spiffe_sequence).toBe("number");
    expect(typeof bundle.body.spiffe_refresh_hint).toBe("number");
    const uses = new Set(bundle.body.keys.map((k: { use: string }) => k.use));
    expect(uses).toEqual(new Set(["x509-svid", "jwt-svid"]));
    const jwks = jose.createLocalJWKSet({ keys: bundle.body.keys.filter((k: any) => k.use === "jwt-svid").map(({ use: _use, ...k }: any) => k) });
    const { payload, protectedHeader } = await jose.jwtVerify(jwt, jwks, { audience: "mcp.example", algorithms: ["ES256"] });
    expect(payload.sub).toBe("spiffe://mandate.local/agent/deploy-auditor");
    expect(protectedHeader.typ).toBe("JWT");
    expect(protectedHeader.kid).toBeTruthy();
    expect(payload.exp! - payload.iat!).toBeLessThanOrEqual(300);
  });

  it("a lock stops renewal and JWT minting at once; removing it restores both", async () => {
    const add = await mandate("locks", "add", "--agent", "deploy-auditor", "--reason", "incident 42", "--data-dir", dataDir, "--format", "json");
    expect(add.code, add.stderr).toBe(0);
    const lockId = add.json().id;
    const renew = await mandate("daemon", "--out", creds, "--oneshot");
    expect(renew.code).toBe(1);
    expect(renew.stderr).toContain("LOCKED");
    expect(renew.stderr).toContain("incident 42");
    const jwt = await mandate("svid", "jwt", "--audience", "x", "--out", creds);
    expect(jwt.stderr).toContain("LOCKED");
    const ls = await mandate("locks", "ls", "--data-dir", dataDir);
    expect(ls.stdout).toContain("agent:deploy-auditor");
    expect((await mandate("locks", "rm", lockId, "--data-dir", dataDir)).code).toBe(0);
    expect((await mandate("svid", "jwt", "--audience", "x", "--out", creds)).code).toBe(0);
  });

  it("locks one certificate by serial, leaving others alone", async () => {
    const state = (await readCredentials(creds))!.state;
    expect((await mandate("locks", "add", "--serial", state.serial, "--reason", "copied", "--ttl", "1h", "--data-dir", dataDir)).code).toBe(0);
    expect((await mandate("svid", "jwt", "--audience", "x", "--out", creds)).stderr).toContain("LOCKED");
  });

  it("rejects a pin that does not match the server's CA before sending anything", async () => {
    const added = await mandate("agents", "add", "pin-test", "--data-dir", dataDir, "--format", "json");
    const wrongPin = `sha256:${"00".repeat(32)}`;
    const tokenParts = added.json().token.split(".");
    const forgedToken = `${tokenParts[0]}.${tokenParts[1]}.${Buffer.alloc(32).toString("base64url")}`;
    const result = await mandate("daemon", "--auth-server", plane.url, "--join-token", forgedToken, "--ca-pin", wrongPin, "--out", join(work, "pin"), "--oneshot");
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("CA_PIN_MISMATCH");
    // The real token still works afterwards: nothing was sent with the forged pin.
    const ok = await mandate("daemon", "--auth-server", plane.url, "--join-token", added.json().token, "--out", join(work, "pin"), "--oneshot");
    expect(ok.code, ok.stderr).toBe(0);
  });

  it("rejects forged, expired and malformed join requests with clear errors", async () => {
    const forged = await rawRequest(`${plane.url}/v1/join`, { ca: caPem, body: JSON.stringify({ token: `mj1.${"A".repeat(43)}.${"B".repeat(43)}`, csr: "x" }) });
    expect(forged.status).toBe(401);
    expect(forged.body.error.code).toBe("INVALID_JOIN_TOKEN");
    const garbage = await rawRequest(`${plane.url}/v1/join`, { ca: caPem, body: "{not json" });
    expect(garbage.status).toBe(400);
    expect(garbage.body.error.code).toBe("MALFORMED_REQUEST");
    const truncated = await rawRequest(`${plane.url}/v1/join`, { ca: caPem, body: '{"token":"mj1.' });
    expect(truncated.body.error.code).toBe("MALFORMED_REQUEST");
    const unknownField = await rawRequest(`${plane.url}/v1/join`, { ca: caPem, body: JSON.stringify({ token: "a", csr: "b", extra: 1 }) });
    expect(unknownField.status).toBe(400);
    expect(unknownField.body.error.message).toContain("extra");
    const huge = await rawRequest(`${plane.url}/v1/join`, { ca: caPem, body: JSON.stringify({ token: "a", csr: "b".repeat(200_000) }) });
    expect(huge.status).toBe(413);
    expect(huge.body.error.code).toBe("BODY_TOO_LARGE");

    const short = await mandate("agents", "add", "short-lived", "--token-ttl", "1s", "--data-dir", dataDir, "--format", "json");
    await new Promise((r) => setTimeout(r, 1100));
    const expired = await mandate("daemon", "--auth-server", plane.url, "--join-token", short.json().token, "--out", join(work, "expired"), "--oneshot");
    expect(expired.stderr).toContain("JOIN_TOKEN_EXPIRED");
  });

  it("rejects a client certificate from another CA", async () => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const keyPem = privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    await writeFile(join(work, "foreign.key"), keyPem);
    await exec("openssl", ["req", "-x509", "-new", "-key", join(work, "foreign.key"), "-subj", "/CN=x", "-addext", "subjectAltName=URI:spiffe://mandate.local/agent/deploy-auditor", "-days", "1", "-out", join(work, "foreign.pem")]);
    const foreign = await rawRequest(`${plane.url}/v1/svid/jwt`, { ca: caPem, cert: await readFile(join(work, "foreign.pem"), "utf8"), key: keyPem, body: JSON.stringify({ audience: ["x"] }) });
    expect(foreign.status).toBe(401);
    expect(foreign.body.error.code).toBe("INVALID_CERTIFICATE");
    const anonymous = await rawRequest(`${plane.url}/v1/svid/jwt`, { ca: caPem, body: JSON.stringify({ audience: ["x"] }) });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.error.code).toBe("UNAUTHENTICATED");
  });

  it("keeps agents away from admin routes", async () => {
    const pinCreds = await readCredentials(join(work, "pin"));
    const response = await rawRequest(`${plane.url}/v1/agents`, { method: "GET", ca: caPem, cert: pinCreds!.svidPem, key: pinCreds!.keyPem });
    expect(response.status).toBe(403);
    expect(response.body.error.code).toBe("PERMISSION_DENIED");
  });

  it("removing an agent revokes its live credentials", async () => {
    const pinDir = join(work, "pin");
    expect((await mandate("svid", "jwt", "--audience", "x", "--out", pinDir)).code).toBe(0);
    const rm = await mandate("agents", "rm", "pin-test", "--data-dir", dataDir);
    expect(rm.code, rm.stderr).toBe(0);
    expect((await mandate("svid", "jwt", "--audience", "x", "--out", pinDir)).stderr).toContain("LOCKED");
    const shown = await mandate("agents", "show", "pin-test", "--data-dir", dataDir);
    expect(shown.stderr).toContain("NOT_FOUND");
  });

  it("records joins, renewals, rejections and locks in the audit log", async () => {
    const events = await plane.context.audit.list({ limit: 500 });
    const types = new Set(events.map((e) => `${e.type}:${e.code}`));
    for (const expected of ["identity.join:OK", "identity.renew:OK", "identity.join:JOIN_TOKEN_USED", "identity.join:INVALID_JOIN_TOKEN", "identity.renew:LOCKED", "lock.create:OK", "agent.create:OK", "agent.delete:OK", "identity.jwt:OK"]) {
      expect(types, expected).toContain(expected);
    }
    const join = events.find((e) => e.type === "identity.join" && e.code === "OK")!;
    expect(join.actor.agent).toBeTruthy();
    expect(join.actor.instance).toMatch(/^inst-/);
    expect(JSON.stringify(events)).not.toContain("mj1.");
  });

  it("prints errors as JSON with --format json and exits non-zero", async () => {
    const result = await mandate("agents", "show", "nobody", "--data-dir", dataDir, "--format", "json");
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stderr).error.code).toBe("NOT_FOUND");
    const noAdmin = await mandate("agents", "ls", "--data-dir", join(work, "nowhere"));
    expect(noAdmin.stderr).toContain("--data-dir");
  });
});

describe("one control plane per data directory", () => {
  it("refuses a second control plane on the same data directory, and allows it after the first stops", async () => {
    const dataDir = await tempDir();
    const first = await startTestControlPlane({ dataDir });
    try {
      await expect(startTestControlPlane({ dataDir })).rejects.toThrow(`in use by the control plane with pid ${process.pid}`);
    } finally {
      await first.close();
    }
    const second = await startTestControlPlane({ dataDir });
    await second.close();
    await rm(dataDir, { recursive: true, force: true });
  });
});

describe("fail closed when the store breaks", () => {
  it("refuses to issue when the database file is deleted: clear error, no certificate, no half-written state", async () => {
    const dataDir = await tempDir();
    const work = await tempDir();
    const plane = await startTestControlPlane({ dataDir });
    try {
      const added = await mandate("agents", "add", "fragile", "--data-dir", dataDir, "--format", "json");
      expect(added.code, added.stderr).toBe(0);
      await rm(join(dataDir, "mandate.db"));
      await plane.context.store.checkHealth();
      const joined = await mandate("daemon", "--auth-server", plane.url, "--join-token", added.json().token, "--out", join(work, "c"), "--oneshot");
      expect(joined.code).toBe(1);
      expect(joined.stderr).toContain("STORE_UNAVAILABLE");
      expect(joined.stderr).toContain("deleted");
      await expect(stat(join(work, "c", "svid.pem"))).rejects.toThrow();
      const ready = await rawRequest(`${plane.url}/readyz`, { method: "GET", ca: (await readIdentityFile(plane.adminIdentityPath)).bundlePem });
      expect(ready.status).toBe(503);
    } finally {
      await plane.close();
      await rm(dataDir, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe("audit from the CLI", () => {
  it("searches with filters and formats, verifies the chain, and names tampering", async () => {
    const dataDir = await tempDir();
    const plane = await startTestControlPlane({ dataDir });
    try {
      await mandate("agents", "add", "audited", "--data-dir", dataDir);
      await mandate("locks", "add", "--agent", "audited", "--reason", "testing audit", "--data-dir", dataDir);
      const jsonl = await mandate("audit", "search", "--type", "lock.create", "--since", "1h", "--format", "jsonl", "--data-dir", dataDir);
      expect(jsonl.code, jsonl.stderr).toBe(0);
      const lines = jsonl.stdout.trim().split("\n").map((l) => JSON.parse(l));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ type: "lock.create", target: { kind: "agent", value: "audited" } });
      const table = await mandate("audit", "search", "--agent", "nobody", "--data-dir", dataDir);
      expect(table.stdout).toContain("(none)");
      await plane.context.audit.append({ type: "delegation.create", code: "OK", actor: { kind: "user", user: "alice" }, delegation: { id: "dlg-7", delegator: "alice", task: "task-7" }, outcome: { status: "ok" } });
      const trace = await mandate("audit", "trace", "task-7", "--data-dir", dataDir);
      expect(trace.code, trace.stderr).toBe(0);
      expect(trace.stdout).toContain("trace task-7 (1 event)");
      expect(trace.stdout).toContain("delegation.create  alice");
      expect((await mandate("audit", "trace", "task-7", "--format", "json", "--data-dir", dataDir)).json().events).toBe(1);
      const ok = await mandate("audit", "verify", "--data-dir", dataDir);
      expect(ok.code, ok.stderr).toBe(0);
      expect(ok.stdout).toMatch(/^OK: \d+ events/);

      await plane.context.store.db.updateTable("audit_events").set({ body: '{"forged":true}' }).where("chain_seq", "=", 2).execute();
      const bad = await mandate("audit", "verify", "--data-dir", dataDir);
      expect(bad.code).toBe(1);
      expect(bad.stdout).toContain("event 2");
      expect(bad.stdout).toContain("altered");
      expect(bad.stderr).toContain("AUDIT_TAMPERED");
    } finally {
      await plane.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe("signed audit checkpoints from the CLI", () => {
  it("signs, exports, verifies offline with only the public key, and proves inclusion and consistency", async () => {
    const dataDir = await tempDir();
    const work = await tempDir();
    const plane = await startTestControlPlane({ dataDir });
    try {
      await mandate("agents", "add", "cp-a", "--data-dir", dataDir);
      expect((await mandate("audit", "checkpoints", "--now", "--data-dir", dataDir)).code).toBe(0);
      await mandate("agents", "add", "cp-b", "--data-dir", dataDir);
      const listed = await mandate("audit", "checkpoints", "--now", "--format", "json", "--data-dir", dataDir);
      const sizes = listed.json().checkpoints.map((c: { treeSize: number }) => c.treeSize);
      expect(sizes).toHaveLength(2);
      const file = join(work, "checkpoints.json");
      expect((await mandate("audit", "checkpoints", "--out", file, "--data-dir", dataDir)).code).toBe(0);
      const pub = await mandate("audit", "public-key", "--data-dir", dataDir);
      await writeFile(join(work, "audit.pub"), pub.stdout);
      const offline = await mandate("audit", "verify", "--checkpoints", file, "--public-key", join(work, "audit.pub"));
      expect(offline.code, offline.stderr).toBe(0);
      expect(offline.stdout).toContain("OK: 2 signed checkpoint(s)");

      const saved = JSON.parse(await readFile(file, "utf8"));
      saved.checkpoints[1].note = saved.checkpoints[1].note.replace(/\n(\d+)\n/, (_m: string, n: string) => `\n${Number(n) + 1}\n`);
      await writeFile(join(work, "tampered.json"), JSON.stringify(saved));
      const tampered = await mandate("audit", "verify", "--checkpoints", join(work, "tampered.json"), "--public-key", join(work, "audit.pub"));
      expect(tampered.code).toBe(1);
      expect(tampered.stdout).toContain("checkpoint 2");

      const prove = await mandate("audit", "prove", "2", "--data-dir", dataDir);
      expect(prove.code, prove.stderr).toBe(0);
      expect(prove.stdout).toMatch(/^OK: event 2/);
      const consistency = await mandate("audit", "consistency", String(sizes[0]), String(sizes[1]), "--data-dir", dataDir);
      expect(consistency.code, consistency.stderr).toBe(0);
      expect(consistency.stdout).toContain("extends");
      const verify = await mandate("audit", "verify", "--format", "json", "--data-dir", dataDir);
      expect(verify.json()).toMatchObject({ ok: true, checkpointsVerified: 2 });
    } finally {
      await plane.close();
      await rm(dataDir, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
  });
});
