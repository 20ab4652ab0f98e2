import { readFile } from "node:fs/promises";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { MandateError } from "../errors/index.js";

/**
 * The LLM proxy's configuration: the `llm:` section of the file given to
 * `mandate start --llm-config FILE`, plus the providers and models added at run time
 * with `mandate llm providers|models add` (kept in the store). Every object is strict:
 * a misspelt key is an error at start, not a silently ignored setting.
 */
const Name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/, "names are letters, digits and . _ : / - (at most 128)");
export const ProviderType = z.enum(["openai", "anthropic", "azure", "openai-compatible"]);
export type ProviderType = z.infer<typeof ProviderType>;

export const ProviderConfig = z
  .strictObject({
    name: Name,
    type: ProviderType,
    /** e.g. https://api.openai.com/v1, https://api.anthropic.com, https://NAME.openai.azure.com, http://127.0.0.1:11434/v1 */
    baseUrl: z.string().url().optional(),
    /** the environment variable holding the key (read by the proxy process only) */
    apiKeyEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/).optional(),
    /** the entry in the secrets file holding the key */
    apiKeySecret: z.string().min(1).max(128).optional(),
    /** Azure OpenAI api-version for deployment URLs */
    apiVersion: z.string().max(64).optional(),
    /** per attempt: time allowed until the provider's response headers */
    timeoutMs: z.number().int().positive().max(3_600_000).optional(),
    /** a stream with no bytes for this long is abandoned */
    streamIdleTimeoutMs: z.number().int().positive().max(3_600_000).optional(),
  })
  .refine((p) => !(p.apiKeyEnv && p.apiKeySecret), "give apiKeyEnv or apiKeySecret, not both");
export type ProviderConfig = z.infer<typeof ProviderConfig>;

/** US dollars per million tokens; overrides the maintained price table for one model. */
export const PriceOverride = z.strictObject({
  inputPerMTok: z.number().nonnegative(),
  outputPerMTok: z.number().nonnegative(),
  cachedInputPerMTok: z.number().nonnegative().optional(),
  cacheWritePerMTok: z.number().nonnegative().optional(),
  /** reasoning tokens are billed as output unless the provider prices them apart */
  reasoningPerMTok: z.number().nonnegative().optional(),
});
export type PriceOverride = z.infer<typeof PriceOverride>;

export const TargetConfig = z.strictObject({
  provider: Name,
  /** the id sent to the provider (the Azure deployment name for azure); defaults to the model's name */
  upstreamModel: z.string().min(1).max(256).optional(),
  weight: z.number().positive().max(1000).default(1),
  timeoutMs: z.number().int().positive().max(3_600_000).optional(),
  price: PriceOverride.optional(),
});
export type TargetConfig = z.infer<typeof TargetConfig>;

export const Strategy = z.enum(["single", "fallback", "loadbalance", "latency"]);
export type Strategy = z.infer<typeof Strategy>;

export const ModelConfig = z
  .strictObject({
    name: Name,
    /** shorthand for one target */
    provider: Name.optional(),
    upstreamModel: z.string().min(1).max(256).optional(),
    price: PriceOverride.optional(),
    targets: z.array(TargetConfig).min(1).max(32).optional(),
    strategy: Strategy.optional(),
    /** attempts after the first, across targets */
    retries: z.number().int().min(0).max(10).default(2),
    backoffMs: z.number().int().min(0).max(60_000).default(200),
    maxBackoffMs: z.number().int().min(0).max(300_000).default(5_000),
  })
  .refine((m) => (m.provider ? !m.targets : !!m.targets), "a model has either provider (one target) or targets, not both");
export type ModelConfig = z.infer<typeof ModelConfig>;

export const LimitScope = z.enum(["agent", "team", "delegation", "model"]);
export type LimitScope = z.infer<typeof LimitScope>;
export const LimitConfig = z
  .strictObject({
    scope: LimitScope,
    /** one agent/team/delegation/model; without it the limit applies to each one separately */
    name: z.string().min(1).max(256).optional(),
    rpm: z.number().int().positive().optional(),
    tpm: z.number().int().positive().optional(),
  })
  .refine((l) => l.rpm !== undefined || l.tpm !== undefined, "a limit needs rpm, tpm or both");
export type LimitConfig = z.infer<typeof LimitConfig>;

export const BudgetScope = z.enum(["agent", "team", "delegation"]);
export type BudgetScope = z.infer<typeof BudgetScope>;
export const BudgetPeriod = z.enum(["daily", "weekly", "monthly", "total"]);
export type BudgetPeriod = z.infer<typeof BudgetPeriod>;
export const BudgetConfig = z.strictObject({
  scope: BudgetScope,
  name: z.string().min(1).max(256).optional(),
  period: BudgetPeriod,
  limitUsd: z.number().positive(),
  /** an alert event when spend crosses this share of the limit */
  softPercent: z.number().min(1).max(100).default(80),
});
export type BudgetConfig = z.infer<typeof BudgetConfig>;

export const GuardAction = z.enum(["off", "flag", "redact", "block"]);
export type GuardAction = z.infer<typeof GuardAction>;
const Directions = z.strictObject({ input: GuardAction.optional(), output: GuardAction.optional() });
export const PiiKind = z.enum(["email", "phone", "card", "national_id", "iban"]);
export type PiiKind = z.infer<typeof PiiKind>;
export const GuardrailsConfig = z.strictObject({
  secrets: Directions.default({ input: "redact", output: "redact" }),
  pii: Directions.extend({ kinds: z.array(PiiKind).optional() }).default({ input: "flag", output: "flag" }),
  /** heuristics over text that came from tools or retrieval, where injected instructions hide */
  injection: Directions.extend({ roles: z.array(z.enum(["tool", "user", "system", "assistant"])).optional() }).default({ input: "flag" }),
  hook: z
    .strictObject({
      url: z.string().url(),
      timeoutMs: z.number().int().positive().max(60_000).default(2_000),
      input: GuardAction.optional(),
      output: GuardAction.optional(),
      /** when the classifier cannot be reached: refuse (default) or carry on and flag */
      failOpen: z.boolean().default(false),
    })
    .optional(),
  /** overrides for callers holding a role or calling a model; later rules win */
  rules: z
    .array(
      z.strictObject({
        role: z.string().optional(),
        model: z.string().optional(),
        secrets: Directions.optional(),
        pii: Directions.optional(),
        injection: Directions.optional(),
        hook: Directions.optional(),
      }),
    )
    .default([]),
});
export type GuardrailsConfig = z.infer<typeof GuardrailsConfig>;

export const TrackingConfig = z.strictObject({
  /** store each request's prompt and response (redacted) for `mandate audit trace` */
  prompts: z.boolean().default(true),
  /** characters kept of each prompt and response */
  maxChars: z.number().int().min(0).max(1_000_000).default(8_192),
  retentionDays: z.number().positive().default(30),
});

export const LlmConfig = z.strictObject({
  providers: z.array(ProviderConfig).default([]),
  models: z.array(ModelConfig).default([]),
  limits: z.array(LimitConfig).default([]),
  budgets: z.array(BudgetConfig).default([]),
  guardrails: GuardrailsConfig.default(GuardrailsConfig.parse({})),
  tracking: TrackingConfig.default(TrackingConfig.parse({})),
  circuitBreaker: z.strictObject({ failureThreshold: z.number().int().positive().default(5), cooldownMs: z.number().int().positive().default(30_000) }).default({ failureThreshold: 5, cooldownMs: 30_000 }),
  /** output tokens assumed for estimates when a request sets no maximum */
  defaultMaxOutputTokens: z.number().int().positive().default(4_096),
  maxBodyBytes: z.number().int().positive().max(256 * 1024 * 1024).default(8 * 1024 * 1024),
  /**
   * `durable` (default): the request's audit record is committed before anything is
   * sent upstream. `concurrent`: the commit runs while the request is in flight and the
   * answer is held until it lands (a failed commit aborts the request; a crash in that
   * window can lose the record of one in-flight request).
   */
  auditBeforeForward: z.enum(["durable", "concurrent"]).default("durable"),
  /** where `apiKeySecret` entries are looked up (YAML or JSON map of name → key) */
  secretsFile: z.string().optional(),
});
export type LlmConfig = z.infer<typeof LlmConfig>;

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  return `${issue.path.length ? issue.path.join(".") : "llm"}: ${issue.message}`;
}

export function parseLlmConfig(value: unknown, source = "llm config"): LlmConfig {
  const result = LlmConfig.safeParse(value ?? {});
  if (!result.success) throw new MandateError("CONFIG_INVALID", `${source}: ${describeIssue(result.error)}`);
  return result.data;
}

/** Reads a YAML or JSON file whose `llm:` key (or the whole document) is the LLM configuration. */
export async function loadLlmConfigFile(path: string): Promise<LlmConfig> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new MandateError("CONFIG_INVALID", `cannot read the LLM configuration ${path}: ${(error as Error).message}`);
  }
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw new MandateError("CONFIG_INVALID", `${path} is not valid YAML: ${(error as Error).message}`);
  }
  const section = document && typeof document === "object" && "llm" in document ? (document as { llm: unknown }).llm : document;
  return parseLlmConfig(section, path);
}
