import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Redis } from "ioredis";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ControlPlane } from "../src/server/index.js";
import { FakeProvider } from "./fake-provider/server.js";
import { PROXY_ROLES, applyRolesWithCli } from "./helpers/access.js";
import { type TestAgent, joinTestAgent } from "./helpers/agent.js";
import { tempDir } from "./helpers/backends.js";
import { mandate } from "./helpers/cli.js";
import { FAKE_KEY } from "./helpers/llm.js";
import { burst } from "./helpers/llm-load.js";
import { eventually } from "./helpers/mcp.js";
import { freshPostgresDatabase, postgresBaseUrl, postgresRequired } from "./helpers/postgres.js";

const REPLICA = fileURLToPath(new URL("./fixtures/llm-replica.mjs", import.meta.url));
const BUILT = existsSync(fileURLToPath(new URL("../dist/src/server/index.js", import.meta.url)));
const REDIS_URL = process.env.MANDATE_TEST_REDIS ?? "redis://127.0.0.1:6379";

async function redisReachable(): Promise<boolean> {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 2000 });
  redis.on("error", () => undefined);
  try {
    await redis.connect();
    await redis.ping();
    return true;
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

function startReplica(options: Record<string, unknown>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [REPLICA], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, REPLICA_OPTIONS: JSON.stringify(options), FAKE_KEY } });
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`replica did not start within 30s: ${err}`)), 30_000);
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line) {
        clearTimeout(timer);
        resolve({ child, url: (JSON.parse(line) as { url: string }).url });
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => (err += chunk.toString()));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`replica exited with ${code}: ${err}`));
    });
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

const postgres = await postgresBaseUrl();
const redisUp = await redisReachable();
if (!BUILT) console.warn("[skip] replica tests need the build: run `npm run build` first (npm test does)");
if (!redisUp && postgresRequired()) throw new Error(`Redis is required here but ${REDIS_URL} is unreachable`);
if (!redisUp) console.warn(`[skip] replica tests need Redis at ${REDIS_URL}; set MANDATE_TEST_REDIS to run them`);

describe.skipIf(!postgres || !redisUp || !BUILT)("two proxy processes sharing Redis hold one rate limit and one budget", () => {
  const fake = new FakeProvider({ apiKey: FAKE_KEY });
  const prefix = `mandate-test-${randomBytes(6).toString("hex")}`;
  const replicas: { child: ChildProcess; url: string }[] = [];
  const dirs: string[] = [];
  let dropDb: (() => Promise<void>) | undefined;
  let agent: TestAgent;
  let spender: TestAgent;

  beforeAll(async () => {
    await fake.start();
    const db = await freshPostgresDatabase(postgres!);
    dropDb = db.drop;
    const configDir = await tempDir();
    dirs.push(configDir);
    const configPath = join(configDir, "llm.yaml");
    await writeFile(
      configPath,
      stringify({
        llm: {
          providers: [{ name: "fake", type: "openai", baseUrl: `${fake.url}/v1`, apiKeyEnv: "FAKE_KEY" }],
          models: [{ name: "gpt-4.1-mini", provider: "fake", price: { inputPerMTok: 1000, outputPerMTok: 1000 } }],
          limits: [{ scope: "agent", name: "shared-agent", rpm: 30 }],
          budgets: [{ scope: "team", name: "payments", period: "monthly", limitUsd: 0.5 }],
          guardrails: { secrets: {}, pii: {}, injection: {} },
        },
      }),
    );
    for (let i = 0; i < 2; i++) {
      const dataDir = await tempDir();
      dirs.push(dataDir);
      // One after the other: the first creates the trust domain in PostgreSQL, the second joins it.
      replicas.push(await startReplica({ dataDir, storage: db.url, llm: { configPath, redis: REDIS_URL, redisPrefix: prefix } }));
    }
    const first = { url: replicas[0]!.url, dataDir: dirs[1]!, context: { authority: { trustDomain: "mandate.local" } } } as unknown as ControlPlane;
    await applyRolesWithCli(dirs[1]!, PROXY_ROLES);
    agent = await joinTestAgent(first, "shared-agent", { roles: ["model-user"] });
    spender = await joinTestAgent(first, "payments-bot", { roles: ["model-user"], labels: "team=payments" });
    // The roles were applied through the first replica; the second enforces them once it has polled the store.
    await eventually(async () => {
      const checked = await mandate("access", "check", "llm:gpt-4.1-mini", "--data-dir", dirs[2]!, "--agent", "payments-bot", "--format", "json");
      expect(checked.json()).toMatchObject({ allow: true });
    });
  });
  afterAll(async () => {
    await Promise.all(replicas.map((r) => stop(r.child)));
    await fake.close();
    const redis = new Redis(REDIS_URL);
    const keys = await redis.keys(`*${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    await dropDb?.();
    for (const dir of dirs) await rm(dir, { recursive: true, force: true });
  });

  it("100 concurrent requests split over both replicas against 30 rpm: exactly 30 pass", async () => {
    fake.reset();
    const authorization = `Bearer ${await agent.jwtSvid()}`;
    const [a, b] = await Promise.all(
      replicas.map((r) => burst(`${r.url}/llm/v1/chat/completions`, { n: 50, ca: agent.credentials.bundlePem, authorization, body: (i) => ({ model: "gpt-4.1-mini", messages: [{ role: "user", content: `r${i}` }], max_tokens: 10 }) })),
    );
    const ok = [...a!, ...b!].filter((r) => r.status === 200).length;
    expect(ok).toBe(30);
    expect([...a!, ...b!].filter((r) => r.status === 429)).toHaveLength(70);
    expect(fake.requests).toHaveLength(30);
    // Each replica got 50 requests: with a count per replica, 60 would have passed.
    expect(a).toHaveLength(50);
    expect(b).toHaveLength(50);
  });

  it("a concurrent burst over both replicas cannot overspend the shared budget", async () => {
    fake.reset();
    let release!: () => void;
    fake.script.fallback = { until: new Promise<void>((r) => (release = r)) };
    let refused = 0;
    const authorization = `Bearer ${await spender.jwtSvid()}`;
    const pending = Promise.all(
      replicas.map((r) =>
        burst(`${r.url}/llm/v1/chat/completions`, {
          n: 60,
          ca: spender.credentials.bundlePem,
          authorization,
          body: (i) => ({ model: "gpt-4.1-mini", messages: [{ role: "user", content: `spend ${i}` }], max_tokens: 50 }),
          onResult: (res) => void (res.status === 402 && refused++),
        }),
      ),
    );
    while (refused + fake.requests.length < 120) await new Promise((r) => setTimeout(r, 20));
    const inFlight = fake.requests.length;
    release();
    const results = (await pending).flat();
    fake.script.clear();
    // Each request reserves (prompt + 50 tokens) × $1/1k ≈ $0.062 against $0.50: at most 8 at once, over both replicas.
    expect(inFlight).toBeGreaterThan(0);
    expect(inFlight).toBeLessThanOrEqual(8);
    expect(results.filter((r) => r.status === 200)).toHaveLength(inFlight);
    const refusal = results.find((r) => r.status === 402)!;
    expect(refusal.body.error.message).toContain("team payments");
  });
});
