import { Redis } from "ioredis";
import type { Registry } from "prom-client";
import type { AuditLog } from "../audit/index.js";
import { MandateError } from "../errors/index.js";
import type { AccessGate } from "../policy/index.js";
import type { WorkloadCredentials } from "../server/workload-auth.js";
import type { Store } from "../store/index.js";
import type { FastifyRequest } from "fastify";
import { MemoryBudgetLedger, RedisBudgetLedger } from "./budget-ledger.js";
import { Budgets } from "./budgets.js";
import { CircuitBreakers } from "./circuit-breaker.js";
import type { LlmConfig } from "./config.js";
import { Guardrails } from "./guardrails/index.js";
import { RateLimits } from "./limits.js";
import { LlmMetrics } from "./metrics.js";
import { PriceTable } from "./prices.js";
import { LlmProxy } from "./proxy.js";
import { LlmRecorder } from "./recorder.js";
import { ModelRegistry } from "./registry.js";
import { Router } from "./router.js";
import { ProviderSecrets } from "./secrets.js";

export interface LlmServiceOptions {
  config: LlmConfig;
  store: Store;
  audit: AuditLog;
  gate: AccessGate;
  authenticate: (request: FastifyRequest, attempted: string) => Promise<WorkloadCredentials>;
  metricsRegistry: Registry;
  /** redis://… to share rate limits and budgets between replicas */
  redisUrl?: string | undefined;
  /** keys in Redis start with this (several deployments can share one Redis) */
  redisPrefix?: string | undefined;
  env?: NodeJS.ProcessEnv;
  now?: () => number;
  log?: (message: string, error: unknown) => void;
  registryPollMs?: number;
}

/** Everything the LLM proxy is made of, built once at start and closed at shutdown. */
export class LlmService {
  private constructor(
    readonly proxy: LlmProxy,
    readonly registry: ModelRegistry,
    readonly recorder: LlmRecorder,
    readonly budgets: Budgets,
    readonly config: LlmConfig,
    readonly gate: AccessGate,
    private readonly redis: Redis | undefined,
  ) {}

  static async start(o: LlmServiceOptions): Promise<LlmService> {
    const now = o.now ?? Date.now;
    const secrets = await ProviderSecrets.load(o.config.secretsFile, o.env ?? process.env);
    const registry = new ModelRegistry(o.config, secrets, o.store);
    await registry.load();
    registry.start(o.registryPollMs ?? 1000);
    let redis: Redis | undefined;
    if (o.redisUrl) {
      if (!/^rediss?:\/\//.test(o.redisUrl)) throw new MandateError("CONFIG_INVALID", "--redis must be a redis://… or rediss://… URL");
      redis = new Redis(o.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2, enableOfflineQueue: false, connectTimeout: 5000 });
      redis.on("error", () => undefined);
      try {
        await redis.connect();
      } catch (error) {
        redis.disconnect();
        throw new MandateError("CONFIG_INVALID", `cannot reach Redis at ${o.redisUrl.replace(/\/\/[^@]*@/, "//***@")}: ${(error as Error).message}`);
      }
    }
    const prefix = o.redisPrefix ?? "mandate:llm";
    const recorder = new LlmRecorder(o.store, o.config.tracking, (error) => o.log?.("LLM usage or transcript write failed", error), now);
    recorder.startRetention();
    const budgets = new Budgets(o.config.budgets, redis ? new RedisBudgetLedger(redis, now) : new MemoryBudgetLedger(now), (scope, name, since) => recorder.spendSince(scope, name, since), now, `${prefix}:budget`);
    const limits = new RateLimits(o.config.limits, { redis, keyPrefix: `${prefix}:rl`, now });
    const proxy = new LlmProxy({
      config: o.config,
      registry,
      gate: o.gate,
      audit: o.audit,
      authenticate: o.authenticate,
      limits,
      budgets,
      prices: new PriceTable(),
      guardrails: new Guardrails(o.config.guardrails),
      recorder,
      metrics: new LlmMetrics(o.metricsRegistry),
      router: new Router(new CircuitBreakers(o.config.circuitBreaker.failureThreshold, o.config.circuitBreaker.cooldownMs, now)),
      now,
      ...(o.log ? { log: o.log } : {}),
    });
    return new LlmService(proxy, registry, recorder, budgets, o.config, o.gate, redis);
  }

  /** Every request answered so far has its outcome event, usage and transcript rows and alerts durable. */
  async settled(): Promise<void> {
    await this.proxy.settled();
    await this.recorder.flush();
  }

  async close(): Promise<void> {
    this.registry.stop();
    this.recorder.stop();
    await this.settled();
    if (this.redis) this.redis.disconnect();
  }
}
