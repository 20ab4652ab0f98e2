import { randomUUID } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/server/index.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { startTestControlPlane } from "./helpers/control-plane.js";
import { type TestIssuerKey, hs256WithPublicKey, issuerKey, signToken, startJwksIssuer, startOidcProvider, unsignedToken } from "./helpers/oidc.js";

const K8S_ISSUER = "https://kubernetes.default.svc.cluster.local";
let plane: ControlPlane;
let dataDir: string;
let work: string;

beforeAll(async () => {
  dataDir = await tempDir();
  work = await tempDir();
  plane = await startTestControlPlane({ dataDir });
});
afterAll(async () => {
  await plane.close();
  await rm(dataDir, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

const admin = (...args: string[]) => mandate(...args, "--data-dir", dataDir);

/** One `mandate daemon --oneshot` join with a platform token; each attempt gets a fresh credential directory. */
async function joinWith(method: string, token: string, extra: string[] = []) {
  const dir = join(work, randomUUID());
  const tokenFile = `${dir}.token`;
  await writeFile(tokenFile, `${token}\n`);
  const result = await mandate("daemon", "--auth-server", plane.url, "--ca-pin", plane.context.authority.caPin, "--join-method", method, "--token-file", tokenFile, "--out", dir, "--oneshot", "--format", "json", ...extra);
  let errorCode: string | undefined;
  let message = result.stderr;
  try {
    ({ code: errorCode, message } = JSON.parse(result.stderr).error);
  } catch {
    errorCode = /\[([A-Z_]+)\]/.exec(result.stderr)?.[1];
  }
  return { ...result, dir, errorCode, message };
}

/** A projected service-account token exactly as the kubelet writes it (audience-bound, with jti). */
function kubernetesClaims(overrides: Record<string, unknown> = {}, namespace = "checkout", serviceAccount = "auditor") {
  const now = Math.floor(Date.now() / 1000);
  return {
    aud: ["mandate"],
    exp: now + 600,
    iat: now,
    nbf: now,
    iss: K8S_ISSUER,
    jti: randomUUID(),
    "kubernetes.io": {
      namespace,
      node: { name: "node-a", uid: randomUUID() },
      pod: { name: `${serviceAccount}-5d8f7c9b4-x2x7k`, uid: randomUUID() },
      serviceaccount: { name: serviceAccount, uid: randomUUID() },
    },
    sub: `system:serviceaccount:${namespace}:${serviceAccount}`,
    ...overrides,
  };
}

async function joinEvents(): Promise<{ code: string; details?: { method?: string; rule?: string } }[]> {
  const result = await admin("audit", "search", "--type", "identity.join", "--format", "json", "--limit", "500");
  return result.json();
}

describe("token-less joins", () => {
  let key: TestIssuerKey;

  it("joins a Kubernetes service account by its projected token, and refuses forgeries, other namespaces and replays, each with a clear error and an audit event", async () => {
    key = await issuerKey();
    expect((await admin("agents", "add", "auditor", "--format", "json")).code).toBe(0);
    const jwksFile = join(work, "cluster-jwks.json");
    await writeFile(jwksFile, JSON.stringify({ keys: [key.publicJwk] }));
    const added = await admin("joins", "add", "--method", "kubernetes", "--issuer", K8S_ISSUER, "--jwks-file", jwksFile, "--audience", "mandate", "--allow", "namespace=checkout,service_account=auditor", "--agent", "auditor");
    expect(added.code, added.stderr).toBe(0);
    expect(added.stdout).toContain("--join-method kubernetes --token-file /var/run/secrets/tokens/mandate");
    expect(added.stdout).toContain(plane.context.authority.caPin);

    const token = await signToken(key, kubernetesClaims());
    const joined = await joinWith("kubernetes", token);
    expect(joined.code, joined.stderr).toBe(0);
    expect(joined.json().spiffeId).toBe("spiffe://mandate.local/agent/auditor");
    // Afterwards the daemon renews with its SVID, as with any join.
    expect((await mandate("daemon", "--out", joined.dir, "--oneshot", "--format", "json")).code).toBe(0);
    const instances = (await admin("agents", "instances", "ls", "auditor", "--format", "json")).json<{ joinMethod: string; generation: number }[]>();
    expect(instances).toMatchObject([{ joinMethod: "kubernetes", generation: 2 }]);

    const other = await issuerKey(key.kid);
    const now = Math.floor(Date.now() / 1000);
    const attempts: [string, string, RegExp][] = [
      [await signToken(key, kubernetesClaims({ iss: "https://evil.example" })), "INVALID_JOIN_TOKEN", /no kubernetes join rule trusts issuer/],
      [await signToken(key, kubernetesClaims({ aud: ["kubernetes"] })), "JWT_AUDIENCE_MISMATCH", /audience is not "mandate"/],
      [await signToken(key, kubernetesClaims({ iat: now - 7200, nbf: now - 7200, exp: now - 3600 })), "JWT_EXPIRED", /expired/],
      [await signToken(other, kubernetesClaims()), "INVALID_JWT", /signature does not verify/],
      [unsignedToken(kubernetesClaims()), "INVALID_JWT", /algorithm is not allowed|not valid/],
      [await hs256WithPublicKey(key, kubernetesClaims()), "INVALID_JWT", /algorithm is not allowed/],
      [await signToken(key, kubernetesClaims({}, "payments", "auditor")), "JOIN_NOT_ALLOWED", /match no --allow condition/],
      [await signToken(key, kubernetesClaims({}, "checkout", "deployer")), "JOIN_NOT_ALLOWED", /"service_account":"deployer"/],
      [token, "JOIN_TOKEN_USED", /already used/],
      // Re-signed, so the bytes differ, but the same jti: still the same token.
      [await signToken(key, { ...JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()), iat: now + 1 }), "JOIN_TOKEN_USED", /already used/],
      ["not-a-jwt", "INVALID_JWT", /not a compact JWT/],
    ];
    for (const [bad, code, message] of attempts) {
      const result = await joinWith("kubernetes", bad);
      expect(result.code, `${code}: ${result.stderr}`).not.toBe(0);
      expect(result.errorCode, result.stderr).toBe(code);
      expect(result.message).toMatch(message);
    }
    // Nothing joined but the one good token.
    expect((await admin("agents", "instances", "ls", "auditor", "--format", "json")).json()).toHaveLength(1);
    const refused = (await joinEvents()).filter((e) => e.details?.method === "kubernetes" && e.code !== "OK").map((e) => e.code);
    expect(refused.sort()).toEqual(attempts.map(([, code]) => code).sort());
  });

  it("joins a GitHub Actions job by its OIDC token (keys found by discovery) only from the allowed repository, branch and environment", async () => {
    const ghKey = await issuerKey();
    const github = await startJwksIssuer([ghKey]);
    try {
      expect((await admin("agents", "add", "release-bot")).code).toBe(0);
      const added = await admin("joins", "add", "--method", "github", "--issuer", github.issuer, "--audience", "mandate", "--allow", "repository=acme/shop,ref=refs/heads/main,environment=production", "--agent", "release-bot", "--format", "json");
      expect(added.code, added.stderr).toBe(0);
      const now = Math.floor(Date.now() / 1000);
      const claims = (overrides: Record<string, unknown> = {}) => ({
        jti: randomUUID(),
        sub: "repo:acme/shop:environment:production",
        environment: "production",
        aud: "mandate",
        ref: "refs/heads/main",
        sha: "d6e0f2a1c3b4",
        repository: "acme/shop",
        repository_owner: "acme",
        repository_owner_id: "1234",
        repository_id: "5678",
        repository_visibility: "private",
        run_id: "42",
        run_number: "7",
        run_attempt: "1",
        actor: "octocat",
        actor_id: "99",
        workflow: "deploy",
        workflow_ref: "acme/shop/.github/workflows/deploy.yml@refs/heads/main",
        event_name: "push",
        ref_type: "branch",
        job_workflow_ref: "acme/shop/.github/workflows/deploy.yml@refs/heads/main",
        runner_environment: "github-hosted",
        iss: github.issuer,
        nbf: now,
        exp: now + 300,
        iat: now,
        ...overrides,
      });
      const joined = await joinWith("github", await signToken(ghKey, claims()));
      expect(joined.code, joined.stderr).toBe(0);
      expect(joined.json().spiffeId).toBe("spiffe://mandate.local/agent/release-bot");
      for (const [overrides, why] of [
        [{ ref: "refs/heads/feature" }, "another branch"],
        [{ repository: "evil/shop", repository_owner: "evil" }, "a fork"],
        [{ environment: "staging" }, "another environment"],
      ] as const) {
        const result = await joinWith("github", await signToken(ghKey, claims(overrides)));
        expect(result.errorCode, `${why}: ${result.stderr}`).toBe("JOIN_NOT_ALLOWED");
      }
    } finally {
      await github.close();
    }
  });

  it("joins by a token from a real OpenID provider (generic oidc, GitLab-style claims with globs), once per token", async () => {
    let claims: Record<string, unknown> = { project_path: "acme/payments", ref: "main", ref_protected: "true", pipeline_source: "push" };
    const provider = await startOidcProvider({ audience: "mandate", claims: () => claims });
    try {
      expect((await admin("agents", "add", "ci-deployer")).code).toBe(0);
      const added = await admin("joins", "add", "--method", "oidc", "--issuer", provider.issuer, "--audience", "mandate", "--allow", "project_path=acme/*,ref_protected=true", "--agent", "ci-deployer", "--format", "json");
      expect(added.code, added.stderr).toBe(0);
      const token = await provider.mintToken();
      const joined = await joinWith("oidc", token);
      expect(joined.code, joined.stderr).toBe(0);
      expect(joined.json().spiffeId).toBe("spiffe://mandate.local/agent/ci-deployer");
      expect((await joinWith("oidc", token)).errorCode).toBe("JOIN_TOKEN_USED");

      claims = { ...claims, project_path: "mallory/payments" };
      expect((await joinWith("oidc", await provider.mintToken())).errorCode).toBe("JOIN_NOT_ALLOWED");
      claims = { ...claims, project_path: "acme/payments", ref_protected: "false" };
      expect((await joinWith("oidc", await provider.mintToken())).errorCode).toBe("JOIN_NOT_ALLOWED");

      // Removing the rule stops new joins through it.
      const rules = (await admin("joins", "ls", "--format", "json")).json<{ id: string; agent: string }[]>();
      expect(rules.map((r) => r.agent).sort()).toEqual(["auditor", "ci-deployer", "release-bot"]);
      const rule = rules.find((r) => r.agent === "ci-deployer")!;
      expect((await admin("joins", "rm", rule.id)).code).toBe(0);
      claims = { ...claims, ref_protected: "true" };
      expect((await joinWith("oidc", await provider.mintToken())).errorCode).toBe("INVALID_JOIN_TOKEN");
    } finally {
      await provider.close();
    }
  });

  it("refuses rules that would let any repository or namespace in, or carry private keys", async () => {
    const jwksFile = join(work, "private-jwks.json");
    const key = await issuerKey();
    const { exportJWK } = await import("jose");
    await writeFile(jwksFile, JSON.stringify({ keys: [await exportJWK(key.privateKey)] }));
    const cases: string[][] = [
      ["--method", "github", "--audience", "mandate", "--allow", "ref=refs/heads/main"],
      ["--method", "kubernetes", "--issuer", K8S_ISSUER, "--jwks-file", jwksFile, "--audience", "mandate", "--allow", "namespace=checkout"],
      ["--method", "kubernetes", "--issuer", K8S_ISSUER, "--jwks-url", "http://example.com/jwks", "--audience", "mandate", "--allow", "namespace=checkout"],
      ["--method", "oidc", "--issuer", "https://gitlab.com", "--audience", "mandate"],
    ];
    for (const args of cases) {
      const result = await admin("joins", "add", ...args, "--agent", "auditor");
      expect(result.code, args.join(" ")).not.toBe(0);
      expect(result.stderr, args.join(" ")).toMatch(/\[INVALID_ARGUMENT\]/);
    }
  });
});
