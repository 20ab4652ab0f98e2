import { X509Certificate, webcrypto } from "node:crypto";
import { copyFile, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateKeyAndCsr, readCredentials } from "../src/agent/index.js";
import { readIdentityFile } from "../src/client/identity-file.js";
import { MandateClient } from "../src/client/http-client.js";
import { pemDecodeAll } from "../src/identity/index.js";
import type { ControlPlane } from "../src/server/index.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";

describe("admin access, server identity and instance locks", () => {
  let plane: ControlPlane;
  let dataDir: string;
  let work: string;

  beforeAll(async () => {
    dataDir = await tempDir();
    work = await tempDir();
    plane = await startTestControlPlane({ dataDir, publicAddrs: ["mandate.example.test:8443", "10.9.8.7"], auditExportDir: join(work, "audit-export") });
  });
  afterAll(async () => {
    await plane?.close();
    await rm(dataDir, { recursive: true, force: true });
    await rm(work, { recursive: true, force: true });
  });

  it("finds the local admin identity through MANDATE_DATA_DIR", async () => {
    process.env.MANDATE_DATA_DIR = dataDir;
    try {
      const result = await mandate("agents", "add", "env-agent", "--format", "json");
      expect(result.code, result.stderr).toBe(0);
    } finally {
      delete process.env.MANDATE_DATA_DIR;
    }
  });

  it("works from elsewhere with --auth-server and an identity file", async () => {
    const copied = join(work, "admin.json");
    await copyFile(plane.adminIdentityPath, copied);
    const identity = await readIdentityFile(copied);
    expect(identity.authServer).toBe(plane.url);
    const loopback = `https://127.0.0.1:${plane.port}`;
    const result = await mandate("agents", "ls", "--identity", copied, "--auth-server", loopback, "--format", "json");
    expect(result.code, result.stderr).toBe(0);
    expect(result.json().map((a: { name: string }) => a.name)).toContain("env-agent");
  });

  it("serves a certificate from its own CA naming its public addresses", async () => {
    const identity = await readIdentityFile(plane.adminIdentityPath);
    const tls = await import("node:tls");
    const cert = await new Promise<X509Certificate>((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port: plane.port, ca: identity.bundlePem, servername: "localhost" }, () => {
        resolve(socket.getPeerX509Certificate()!);
        socket.destroy();
      });
      socket.on("error", reject);
    });
    expect(cert.subjectAltName).toContain("DNS:mandate.example.test");
    expect(cert.subjectAltName).toContain("IP Address:10.9.8.7");
    expect(cert.subjectAltName).toContain("URI:spiffe://mandate.local/mandate/server");
    expect(cert.checkIssued(new X509Certificate(pemDecodeAll(identity.bundlePem)[0]!))).toBe(false);
  });

  it("refuses a CSR that asks for another identity over the API", async () => {
    const added = await mandate("agents", "add", "greedy", "--data-dir", dataDir, "--format", "json");
    const identity = await readIdentityFile(plane.adminIdentityPath);
    const client = new MandateClient(`https://127.0.0.1:${plane.port}`, { caPem: identity.bundlePem });
    try {
      const { EC_P256, pemEncode, x509 } = await import("../src/identity/x509-util.js");
      const keys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        name: "CN=x",
        keys,
        signingAlgorithm: EC_P256,
        extensions: [new x509.SubjectAlternativeNameExtension([{ type: "url", value: "spiffe://mandate.local/mandate/admin" }])],
      });
      const error = await client
        .request("POST", "/v1/join", { token: added.json().token, csr: pemEncode("CERTIFICATE REQUEST", new Uint8Array(csr.rawData)) })
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "CSR_IDENTITY_MISMATCH" });
      // The token was not spent on a request that could never succeed.
      const ok = await client.request<{ spiffeId: string }>("POST", "/v1/join", { token: added.json().token, csr: (await generateKeyAndCsr()).csrPem });
      expect(ok.spiffeId).toBe("spiffe://mandate.local/agent/greedy");
    } finally {
      client.close();
    }
  });

  it("locks one instance without touching another instance of the same agent", async () => {
    const loopback = `https://127.0.0.1:${plane.port}`;
    const first = await mandate("agents", "add", "fleet", "--data-dir", dataDir, "--format", "json");
    const second = await mandate("agents", "tokens", "add", "fleet", "--data-dir", dataDir, "--format", "json");
    expect(second.code, second.stderr).toBe(0);
    const a = join(work, "fleet-a");
    const b = join(work, "fleet-b");
    expect((await mandate("daemon", "--auth-server", loopback, "--join-token", first.json().token, "--out", a, "--oneshot")).code).toBe(0);
    expect((await mandate("daemon", "--auth-server", loopback, "--join-token", second.json().token, "--out", b, "--oneshot")).code).toBe(0);
    const instanceA = (await readCredentials(a))!.state.instanceId;
    const locked = await mandate("locks", "add", "--instance", instanceA, "--reason", "host compromised", "--data-dir", dataDir);
    expect(locked.code, locked.stderr).toBe(0);
    const renewA = await mandate("daemon", "--out", a, "--oneshot");
    expect(renewA.stderr).toContain("LOCKED");
    expect((await mandate("svid", "jwt", "--audience", "x", "--out", a)).stderr).toContain("LOCKED");
    expect((await mandate("daemon", "--out", b, "--oneshot")).code).toBe(0);
    expect((await mandate("svid", "jwt", "--audience", "x", "--out", b)).code).toBe(0);
  });

  it("prints the public address in join tokens", async () => {
    const added = await mandate("agents", "add", "public", "--data-dir", dataDir, "--format", "json");
    expect(added.json().authServer).toBe("https://mandate.example.test:8443");
  });

  it("exports the audit log continuously as JSON Lines", async () => {
    const path = join(work, "audit-export", "audit.jsonl");
    const deadline = Date.now() + 5000;
    let text = "";
    while (Date.now() < deadline && !text.includes('"type":"lock.create"')) {
      text = await readFile(path, "utf8").catch(() => "");
      await new Promise((r) => setTimeout(r, 50));
    }
    const events = text.trim().split("\n").map((l) => JSON.parse(l));
    expect(events.map((e) => e.type)).toContain("agent.create");
    expect(events.map((e) => e.type)).toContain("lock.create");
    expect(text).not.toContain("mj1.");
  });

  it("ships signed checkpoints to the export directory, verifiable offline", async () => {
    await mandate("audit", "checkpoints", "--now", "--data-dir", dataDir);
    const file = join(work, "audit-export", "checkpoints.jsonl");
    const pub = await mandate("audit", "public-key", "--data-dir", dataDir);
    const keyFile = join(work, "audit.pub");
    await writeFile(keyFile, pub.stdout);
    const result = await mandate("audit", "verify", "--checkpoints", file, "--public-key", keyFile);
    expect(result.code, result.stderr + result.stdout).toBe(0);
    expect(result.stdout).toMatch(/^OK: 1 signed checkpoint/);
  });

  it("lists and shows an agent's instances", async () => {
    const list = await mandate("agents", "instances", "ls", "fleet", "--data-dir", dataDir, "--format", "json");
    expect(list.code, list.stderr).toBe(0);
    expect(list.json()).toHaveLength(2);
    const id = list.json()[1].id;
    const shown = await mandate("agents", "instances", "show", "fleet", id, "--data-dir", dataDir);
    expect(shown.stdout).toContain(id);
    expect(shown.stdout).toMatch(/joinMethod\s+token/);
    expect((await mandate("agents", "instances", "show", "fleet", "inst-nope", "--data-dir", dataDir)).stderr).toContain("NOT_FOUND");
  });

  it("rotates the CA from the CLI in two phases", async () => {
    const before = await mandate("ca", "show", "--data-dir", dataDir, "--format", "json");
    const prepared = await mandate("ca", "rotate", "--data-dir", dataDir);
    expect(prepared.code, prepared.stderr).toBe(0);
    expect(prepared.stdout).toContain("--activate");
    const activated = await mandate("ca", "rotate", "--activate", "--data-dir", dataDir, "--format", "json");
    expect(activated.code, activated.stderr).toBe(0);
    const after = activated.json().ca;
    expect(after.bundleSequence).toBeGreaterThan(before.json().bundleSequence);
    expect(after.intermediates.filter((i: { state: string }) => i.state === "retired")).toHaveLength(1);
    // Renewal keeps working across the rotation, and the new SVID chains to the new intermediate.
    const a = join(work, "fleet-b");
    expect((await mandate("daemon", "--out", a, "--oneshot")).code).toBe(0);
    await plane.maintain();
    expect((await mandate("svid", "jwt", "--audience", "x", "--out", a)).code).toBe(0);
  });
});

describe("copied credentials", () => {
  it("lock only the instance whose credentials were copied, tolerate a retried renewal, and raise an alert", async () => {
    const dataDir = await tempDir();
    const work = await tempDir();
    const plane = await startTestControlPlane({ dataDir });
    try {
      const first = await mandate("agents", "add", "copied", "--data-dir", dataDir, "--format", "json");
      const second = await mandate("agents", "tokens", "add", "copied", "--data-dir", dataDir, "--format", "json");
      const original = join(work, "original");
      const bystander = join(work, "bystander");
      expect((await mandate("daemon", "--auth-server", plane.url, "--join-token", first.json().token, "--out", original, "--oneshot")).code).toBe(0);
      expect((await mandate("daemon", "--auth-server", plane.url, "--join-token", second.json().token, "--out", bystander, "--oneshot")).code).toBe(0);
      const { cp } = await import("node:fs/promises");
      const copy = join(work, "copy");
      await cp(original, copy, { recursive: true });
      const retried = join(work, "retried");
      await cp(original, retried, { recursive: true });

      // The original renews (generation 1 → 2); a retry with generation 1, as after a lost response, is still accepted.
      expect((await mandate("daemon", "--out", original, "--oneshot")).code).toBe(0);
      expect((await mandate("daemon", "--out", retried, "--oneshot")).code).toBe(0);
      // Now the original presents generation 2, which the retry superseded: a second holder exists.
      const detected = await mandate("daemon", "--out", original, "--oneshot");
      expect(detected.code).toBe(1);
      expect(detected.stderr).toContain("credentials copied");
      expect((await mandate("daemon", "--out", copy, "--oneshot")).stderr).toContain("LOCKED");
      // Only that instance: the agent's other instance keeps working.
      expect((await mandate("daemon", "--out", bystander, "--oneshot")).code).toBe(0);
      const alerts = await mandate("audit", "search", "--type", "identity.copy_detected", "--format", "json", "--data-dir", dataDir);
      expect(alerts.json()).toHaveLength(1);
      expect(alerts.json()[0].details.alert).toBe(true);
    } finally {
      await plane.close();
      await rm(dataDir, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
  });
});
