import { randomUUID } from "node:crypto";
import { readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readCredentials, runDaemon } from "../src/agent/index.js";
import type { ControlPlane } from "../src/server/index.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { issuerKey, signToken } from "./helpers/oidc.js";

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

async function waitFor(check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe("a Kubernetes-joined daemon after an outage longer than its SVID's life", () => {
  it("joins again with the refreshed projected token instead of staying without identity", async () => {
    const dataDir = await tempDir();
    const work = await tempDir();
    const port = await freePort();
    const start = () => startTestControlPlane({ dataDir, listen: `127.0.0.1:${port}`, svidTtlMs: 4000 });
    let plane: ControlPlane | undefined = await start();
    const controller = new AbortController();
    const logs: string[] = [];
    const creds = join(work, "creds");
    const tokenFile = join(work, "token");
    const key = await issuerKey();
    const iss = "https://kubernetes.default.svc.cluster.local";
    // What the kubelet does: a fresh audience-bound token in the same file, well before the old one expires.
    const refreshToken = async () => {
      const now = Math.floor(Date.now() / 1000);
      const claims = { iss, aud: ["mandate"], iat: now, nbf: now, exp: now + 600, jti: randomUUID(), sub: "system:serviceaccount:checkout:auditor", "kubernetes.io": { namespace: "checkout", serviceaccount: { name: "auditor", uid: "u" } } };
      await writeFile(tokenFile, await signToken(key, claims));
    };
    try {
      const admin = (...args: string[]) => mandate(...args, "--data-dir", dataDir);
      expect((await admin("agents", "add", "auditor")).code).toBe(0);
      const jwks = join(work, "jwks.json");
      await writeFile(jwks, JSON.stringify({ keys: [key.publicJwk] }));
      expect((await admin("joins", "add", "--method", "kubernetes", "--issuer", iss, "--jwks-file", jwks, "--audience", "mandate", "--allow", "namespace=checkout", "--agent", "auditor")).code).toBe(0);
      await refreshToken();
      const daemon = runDaemon({
        outDir: creds,
        authServer: plane.url,
        caPin: plane.context.authority.caPin,
        joinMethod: "kubernetes",
        readPlatformToken: () => readFile(tokenFile, "utf8"),
        signal: controller.signal,
        log: (m) => logs.push(m),
      }).catch((e: unknown) => e);
      expect(await waitFor(async () => (await readCredentials(creds)) !== undefined, 10_000)).toBe(true);
      const first = (await readCredentials(creds))!;

      await plane.close();
      plane = undefined;
      expect(await waitFor(() => first.notAfter.getTime() < Date.now() && logs.some((l) => l.includes("has EXPIRED")), 15_000)).toBe(true);
      await refreshToken();
      plane = await start();
      expect(await waitFor(() => logs.some((l) => l.includes("joined again with a fresh kubernetes token")), 30_000)).toBe(true);
      const rejoined = (await readCredentials(creds))!;
      expect(rejoined.state.instanceId).not.toBe(first.state.instanceId);
      expect(rejoined.notAfter.getTime()).toBeGreaterThan(Date.now());
      controller.abort();
      expect(await daemon).toBeUndefined();
    } finally {
      controller.abort();
      await plane?.close();
      await rm(dataDir, { recursive: true, force: true });
      await rm(work, { recursive: true, force: true });
    }
  }, 90_000);
});
