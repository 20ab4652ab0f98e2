import type { Command } from "commander";
import { MandateError } from "../../errors/index.js";
import { parseDuration } from "../duration.js";
import { type Io, printJson, printTable } from "../output.js";
import { adminOptions, withAdminClient } from "./shared.js";

interface ProviderView {
  name: string;
  type: string;
  baseUrl: string;
  apiKeyEnv?: string;
  apiKeySecret?: string;
  source: string;
  status: string;
  problem?: string;
}

interface ModelView {
  name: string;
  strategy: string;
  source: string;
  retries: number;
  targets: { provider: string; upstreamModel: string; weight: number }[];
}

/** `provider:upstream-model[:weight]` */
function parseTarget(value: string): { provider: string; upstreamModel: string; weight?: number } {
  const parts = value.split(":");
  if (parts.length < 2 || parts.length > 3 || !parts[0] || !parts[1]) throw new MandateError("INVALID_ARGUMENT", `invalid --target ${JSON.stringify(value)}: use provider:upstream-model[:weight]`);
  const weight = parts[2] === undefined ? undefined : Number(parts[2]);
  if (weight !== undefined && !(weight > 0)) throw new MandateError("INVALID_ARGUMENT", `invalid weight in --target ${JSON.stringify(value)}`);
  return { provider: parts[0], upstreamModel: parts[1], ...(weight !== undefined ? { weight } : {}) };
}

export function registerLlm(program: Command, io: Io): void {
  const llm = program.command("llm").description("The LLM proxy: providers (where requests go) and models (what agents ask for)");

  const providers = llm.command("providers").description("Model providers the proxy forwards to; their keys stay in the proxy's environment or secrets file");
  adminOptions(
    providers
      .command("add <name>")
      .description("Add a provider")
      .requiredOption("--type <type>", "openai | anthropic | azure | openai-compatible")
      .option("--base-url <url>", "e.g. https://api.openai.com/v1, https://NAME.openai.azure.com, http://127.0.0.1:11434/v1")
      .option("--api-key-env <var>", "environment variable of the control plane holding the key")
      .option("--api-key-secret <name>", "entry of the LLM secrets file holding the key")
      .option("--api-version <version>", "Azure OpenAI api-version, e.g. 2024-10-21")
      .option("--timeout <duration>", "per attempt, until the provider's response headers (default 60s)")
      .option("--stream-idle-timeout <duration>", "abandon a stream silent for this long (default 60s)")
      .addHelpText(
        "after",
        `
The key itself is never passed on the command line, stored or printed: the control plane
reads it from its own environment (--api-key-env) or from the secrets file named by
secretsFile in its LLM config (--api-key-secret).

Examples:
  mandate llm providers add openai --type openai --api-key-env OPENAI_API_KEY
  mandate llm providers add claude --type anthropic --api-key-env ANTHROPIC_API_KEY
  mandate llm providers add azure-east --type azure --base-url https://east.openai.azure.com --api-version 2024-10-21 --api-key-secret azure-east
  mandate llm providers add local --type openai-compatible --base-url http://127.0.0.1:11434/v1`,
      ),
  ).action(async (name: string, opts: { type: string; baseUrl?: string; apiKeyEnv?: string; apiKeySecret?: string; apiVersion?: string; timeout?: string; streamIdleTimeout?: string }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const body = {
        name,
        type: opts.type,
        ...(opts.baseUrl ? { baseUrl: opts.baseUrl } : {}),
        ...(opts.apiKeyEnv ? { apiKeyEnv: opts.apiKeyEnv } : {}),
        ...(opts.apiKeySecret ? { apiKeySecret: opts.apiKeySecret } : {}),
        ...(opts.apiVersion ? { apiVersion: opts.apiVersion } : {}),
        ...(opts.timeout ? { timeoutMs: parseDuration(opts.timeout, "--timeout") } : {}),
        ...(opts.streamIdleTimeout ? { streamIdleTimeoutMs: parseDuration(opts.streamIdleTimeout, "--stream-idle-timeout") } : {}),
      };
      const { provider } = await client.request<{ provider: ProviderView }>("POST", "/v1/llm/providers", body);
      if (g.format === "json") printJson(io, provider);
      else io.out(`Provider ${provider.name} (${provider.type}) added: ${provider.baseUrl}, key from ${provider.apiKeyEnv ? `$${provider.apiKeyEnv}` : provider.apiKeySecret ? `secret ${provider.apiKeySecret}` : "nowhere (none needed)"}.`);
    });
  });
  adminOptions(providers.command("ls").alias("list").description("List providers (where each key comes from, never the key)")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { providers: list } = await client.request<{ providers: ProviderView[] }>("GET", "/v1/llm/providers");
      if (g.format === "json") printJson(io, list);
      else printTable(io, ["NAME", "TYPE", "BASE URL", "KEY FROM", "SOURCE", "STATUS"], list.map((p) => [p.name, p.type, p.baseUrl, p.apiKeyEnv ? `env ${p.apiKeyEnv}` : p.apiKeySecret ? `secret ${p.apiKeySecret}` : "-", p.source, p.problem ? `unavailable: ${p.problem}` : p.status]));
    });
  });
  adminOptions(providers.command("rm <name>").alias("remove").description("Remove a provider added with `providers add` (not one from the config file)")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const result = await client.request<{ removed: string }>("DELETE", `/v1/llm/providers/${encodeURIComponent(name)}`);
      if (g.format === "json") printJson(io, result);
      else io.out(`Provider ${name} removed.`);
    });
  });

  const models = llm.command("models").description("Models agents may ask for, each routed to one or more provider targets");
  adminOptions(
    models
      .command("add <model>")
      .description("Add a model (or an alias over several targets)")
      .option("--provider <name>", "the provider serving it (one target)")
      .option("--upstream-model <id>", "the id sent to the provider (Azure: the deployment); default: the model's name")
      .option("--target <target>", "provider:upstream-model[:weight], a target of an alias, in fallback order (repeatable)", (v: string, prev: string[] = []) => [...prev, v])
      .option("--strategy <strategy>", "fallback | loadbalance | latency (with --target)")
      .option("--retries <n>", "attempts after the first, across targets", (v) => Number(v))
      .option("--input-price <usd>", "US dollars per million input tokens (overrides the price table)", (v) => Number(v))
      .option("--output-price <usd>", "US dollars per million output tokens", (v) => Number(v))
      .addHelpText(
        "after",
        `
Examples:
  mandate llm models add gpt-4.1-mini --provider openai
  mandate llm models add claude-sonnet-4-5 --provider claude
  mandate llm models add smart --target openai:gpt-4.1 --target azure-east:gpt41-prod --strategy fallback
  mandate llm models add spread --target openai:gpt-4.1-mini:3 --target azure-east:gpt41-mini:1 --strategy loadbalance
  mandate llm models add llama3 --provider local --upstream-model llama3.1:8b --input-price 0 --output-price 0`,
      ),
  ).action(async (name: string, opts: { provider?: string; upstreamModel?: string; target?: string[]; strategy?: string; retries?: number; inputPrice?: number; outputPrice?: number }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      if (!opts.provider === !opts.target) throw new MandateError("INVALID_ARGUMENT", "give --provider (one target) or --target (one or more), not both");
      if ((opts.inputPrice === undefined) !== (opts.outputPrice === undefined)) throw new MandateError("INVALID_ARGUMENT", "give both --input-price and --output-price");
      const price = opts.inputPrice !== undefined ? { price: { inputPerMTok: opts.inputPrice, outputPerMTok: opts.outputPrice! } } : {};
      const body = {
        name,
        ...(opts.provider ? { provider: opts.provider, ...(opts.upstreamModel ? { upstreamModel: opts.upstreamModel } : {}), ...price } : { targets: opts.target!.map((t) => ({ ...parseTarget(t), ...price })) }),
        ...(opts.strategy ? { strategy: opts.strategy } : {}),
        ...(opts.retries !== undefined ? { retries: opts.retries } : {}),
      };
      const result = await client.request<{ model: { name: string } }>("POST", "/v1/llm/models", body);
      if (g.format === "json") printJson(io, result.model);
      else io.out(`Model ${name} added; agents whose access allows llm:${name} can call it.`);
    });
  });
  adminOptions(models.command("ls").alias("list").description("List models and their targets")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { models: list } = await client.request<{ models: ModelView[] }>("GET", "/v1/llm/models");
      if (g.format === "json") printJson(io, list);
      else printTable(io, ["MODEL", "STRATEGY", "TARGETS", "RETRIES", "SOURCE"], list.map((m) => [m.name, m.strategy, m.targets.map((t) => `${t.provider}/${t.upstreamModel}${m.strategy === "loadbalance" ? `×${t.weight}` : ""}`).join(", "), m.retries, m.source]));
    });
  });
  adminOptions(models.command("rm <model>").alias("remove").description("Remove a model added with `models add`")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const result = await client.request<{ removed: string }>("DELETE", `/v1/llm/models/${encodeURIComponent(name)}`);
      if (g.format === "json") printJson(io, result);
      else io.out(`Model ${name} removed.`);
    });
  });
}
