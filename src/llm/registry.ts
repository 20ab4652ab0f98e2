import { MandateError } from "../errors/index.js";
import type { Store } from "../store/index.js";
import { type LlmConfig, ModelConfig, type PriceOverride, ProviderConfig, type ProviderType, type Strategy } from "./config.js";
import type { ProviderSecrets } from "./secrets.js";
import type { WireFormat } from "./types.js";

const DEFAULT_BASE_URL: Partial<Record<ProviderType, string>> = { openai: "https://api.openai.com/v1", anthropic: "https://api.anthropic.com" };
export const REVISION_META = "llm_config_revision";

export interface ResolvedProvider {
  name: string;
  type: ProviderType;
  format: WireFormat;
  baseUrl: string;
  apiVersion: string;
  timeoutMs: number;
  streamIdleTimeoutMs: number;
  /** why the provider cannot be used (its key is missing), if it cannot */
  unavailable?: string;
  source: "config" | "store";
  /** the key itself: only the upstream client reads it */
  readonly apiKey: string | undefined;
}

export interface ResolvedTarget {
  /** provider/upstream-model: the unit of circuit breaking and latency tracking */
  id: string;
  provider: ResolvedProvider;
  upstreamModel: string;
  weight: number;
  timeoutMs: number;
  price: PriceOverride | undefined;
}

export interface ResolvedModel {
  name: string;
  strategy: Strategy;
  targets: ResolvedTarget[];
  retries: number;
  backoffMs: number;
  maxBackoffMs: number;
  source: "config" | "store";
}

/** What admin APIs show about a provider: where its key comes from, never the key. */
export interface ProviderView {
  name: string;
  type: ProviderType;
  baseUrl: string;
  apiKeyEnv?: string | undefined;
  apiKeySecret?: string | undefined;
  source: "config" | "store";
  status: "ok" | "unavailable";
  problem?: string | undefined;
}

interface Compiled {
  models: Map<string, ResolvedModel>;
  providers: Map<string, { view: ProviderView; resolved: ResolvedProvider }>;
}

/**
 * Providers and models from the configuration file and the store, compiled into the
 * routing view the proxy reads on every request (no I/O on that path). Entries added
 * with `mandate llm … add` bump a revision in the store; every control plane polls it
 * and recompiles, so a change reaches all replicas within the poll interval.
 */
export class ModelRegistry {
  private compiled: Compiled = { models: new Map(), providers: new Map() };
  private revision = "";
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly config: LlmConfig,
    private readonly secrets: ProviderSecrets,
    private readonly store: Store | undefined,
  ) {}

  async load(): Promise<void> {
    const stored = this.store ? await this.readStore() : { providers: [], models: [] };
    this.compiled = this.compile(stored.providers, stored.models);
  }

  start(pollMs = 1000): void {
    this.timer = setInterval(() => void this.pollOnce(), pollMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  /** Reloads when another control plane (or this one) changed the stored entries. */
  async pollOnce(): Promise<void> {
    if (!this.store) return;
    try {
      const revision = (await this.store.getMeta(REVISION_META)) ?? "";
      if (revision === this.revision) return;
      await this.load();
      this.revision = revision;
    } catch {
      // Keep serving the last good view; the next poll tries again.
    }
  }

  model(name: string): ResolvedModel | undefined {
    return this.compiled.models.get(name);
  }

  models(): ResolvedModel[] {
    return [...this.compiled.models.values()];
  }

  providers(): ProviderView[] {
    return [...this.compiled.providers.values()].map((p) => p.view);
  }

  provider(name: string): ResolvedProvider | undefined {
    return this.compiled.providers.get(name)?.resolved;
  }

  /** Whether a name is taken by the configuration file (which the CLI cannot change). */
  inConfig(kind: "provider" | "model", name: string): boolean {
    return kind === "provider" ? this.config.providers.some((p) => p.name === name) : this.config.models.some((m) => m.name === name);
  }

  /** Checks a definition against the current view before it is stored (unknown providers, missing keys). */
  validate(kind: "provider" | "model", definition: unknown): void {
    if (kind === "provider") {
      const provider = ProviderConfig.parse(definition);
      this.resolveProvider(provider, "store", true);
      return;
    }
    const model = ModelConfig.parse(definition);
    const providers = new Map([...this.compiled.providers].map(([name, p]) => [name, p.resolved]));
    this.resolveModel(model, providers, "store");
  }

  private async readStore(): Promise<{ providers: ProviderConfig[]; models: ModelConfig[] }> {
    const db = this.store!.db;
    const [providers, models] = await Promise.all([db.selectFrom("llm_providers").select(["definition"]).execute(), db.selectFrom("llm_models").select(["definition"]).execute()]);
    return {
      providers: providers.map((r) => ProviderConfig.parse(JSON.parse(r.definition))),
      models: models.map((r) => ModelConfig.parse(JSON.parse(r.definition))),
    };
  }

  private compile(storedProviders: ProviderConfig[], storedModels: ModelConfig[]): Compiled {
    const providers: Compiled["providers"] = new Map();
    for (const p of this.config.providers) providers.set(p.name, this.providerEntry(p, "config", true));
    for (const p of storedProviders) if (!providers.has(p.name)) providers.set(p.name, this.providerEntry(p, "store", false));
    const resolvedProviders = new Map([...providers].map(([name, p]) => [name, p.resolved]));
    const models = new Map<string, ResolvedModel>();
    for (const m of this.config.models) models.set(m.name, this.resolveModel(m, resolvedProviders, "config"));
    for (const m of storedModels) {
      if (models.has(m.name)) continue;
      try {
        models.set(m.name, this.resolveModel(m, resolvedProviders, "store"));
      } catch {
        // A stored model whose provider was removed is skipped until fixed.
      }
    }
    return { models, providers };
  }

  private providerEntry(p: ProviderConfig, source: "config" | "store", strict: boolean): { view: ProviderView; resolved: ResolvedProvider } {
    const resolved = this.resolveProvider(p, source, strict);
    return {
      resolved,
      view: { name: p.name, type: p.type, baseUrl: resolved.baseUrl, apiKeyEnv: p.apiKeyEnv, apiKeySecret: p.apiKeySecret, source, status: resolved.unavailable ? "unavailable" : "ok", problem: resolved.unavailable },
    };
  }

  private resolveProvider(p: ProviderConfig, source: "config" | "store", strict: boolean): ResolvedProvider {
    const baseUrl = (p.baseUrl ?? DEFAULT_BASE_URL[p.type])?.replace(/\/+$/, "");
    if (!baseUrl) throw new MandateError("CONFIG_INVALID", `provider ${p.name}: type ${p.type} needs a base URL (--base-url)`);
    if (p.type === "azure" && !p.apiVersion) throw new MandateError("CONFIG_INVALID", `provider ${p.name}: azure needs apiVersion (e.g. 2024-10-21)`);
    if ((p.type === "openai" || p.type === "anthropic" || p.type === "azure") && !p.apiKeyEnv && !p.apiKeySecret) {
      throw new MandateError("CONFIG_INVALID", `provider ${p.name}: type ${p.type} needs a key: apiKeyEnv (--api-key-env VAR) or apiKeySecret (--api-key-secret NAME)`);
    }
    let apiKey: string | undefined;
    let unavailable: string | undefined;
    try {
      apiKey = this.secrets.resolve(p.name, p);
    } catch (error) {
      if (strict) throw error;
      unavailable = (error as Error).message;
    }
    return {
      name: p.name,
      type: p.type,
      format: p.type === "anthropic" ? "anthropic" : "openai",
      baseUrl,
      apiVersion: p.apiVersion ?? "",
      timeoutMs: p.timeoutMs ?? 60_000,
      streamIdleTimeoutMs: p.streamIdleTimeoutMs ?? 60_000,
      source,
      apiKey,
      ...(unavailable ? { unavailable } : {}),
    };
  }

  private resolveModel(m: ModelConfig, providers: Map<string, ResolvedProvider>, source: "config" | "store"): ResolvedModel {
    const targets = (m.targets ?? [{ provider: m.provider!, upstreamModel: m.upstreamModel, weight: 1, price: m.price }]).map((t) => {
      const provider = providers.get(t.provider);
      if (!provider) throw new MandateError("CONFIG_INVALID", `model ${m.name}: unknown provider ${t.provider}`);
      const upstreamModel = t.upstreamModel ?? m.upstreamModel ?? m.name;
      return { id: `${provider.name}/${upstreamModel}`, provider, upstreamModel, weight: t.weight ?? 1, timeoutMs: t.timeoutMs ?? provider.timeoutMs, price: t.price ?? m.price };
    });
    const formats = new Set(targets.map((t) => t.provider.format));
    if (formats.size > 1) throw new MandateError("CONFIG_INVALID", `model ${m.name}: its targets mix OpenAI- and Anthropic-format providers; a model serves one wire format`);
    return { name: m.name, strategy: m.strategy ?? (targets.length > 1 ? "fallback" : "single"), targets, retries: m.retries, backoffMs: m.backoffMs, maxBackoffMs: m.maxBackoffMs, source };
  }
}
