import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { Agent as UndiciAgent, fetch as undiciFetch } from "undici";
import type { ControlPlane } from "../../src/server/index.js";
import type { TestAgent } from "./agent.js";

/** An undici dispatcher trusting the control plane's CA, optionally presenting the agent's SVID (mTLS). */
export function dispatcherFor(agent: TestAgent, mtls: boolean): UndiciAgent {
  return new UndiciAgent({ connect: { ca: agent.credentials.bundlePem, ...(mtls ? { cert: agent.credentials.svidPem, key: agent.credentials.keyPem } : {}) }, connections: 256 });
}

/**
 * The official OpenAI client pointed at the proxy, changing only the base URL and the
 * API key: a JWT-SVID (optionally `~delegation`), or with mTLS the delegation token.
 */
export function openAiThroughProxy(plane: ControlPlane, agent: TestAgent, apiKey: string, options: { mtls?: boolean; maxRetries?: number } = {}): OpenAI {
  const dispatcher = dispatcherFor(agent, options.mtls ?? false);
  return new OpenAI({ baseURL: `${plane.url}/llm/v1`, apiKey, maxRetries: options.maxRetries ?? 0, fetch: undiciFetch as unknown as typeof fetch, fetchOptions: { dispatcher } as never });
}

export function anthropicThroughProxy(plane: ControlPlane, agent: TestAgent, apiKey: string, options: { mtls?: boolean; maxRetries?: number } = {}): Anthropic {
  const dispatcher = dispatcherFor(agent, options.mtls ?? false);
  return new Anthropic({ baseURL: `${plane.url}/llm/anthropic`, apiKey, maxRetries: options.maxRetries ?? 0, fetch: undiciFetch as unknown as typeof fetch, fetchOptions: { dispatcher } as never });
}

export const FAKE_KEY = "sk-upstream-test-key-0123456789";

/** The LLM config used by most tests: the fake as OpenAI, Azure and Anthropic, with a few models. */
export function fakeLlmConfig(fakeUrl: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    providers: [
      { name: "fake-openai", type: "openai", baseUrl: `${fakeUrl}/v1`, apiKeyEnv: "FAKE_OPENAI_KEY", timeoutMs: 5000, streamIdleTimeoutMs: 3000 },
      { name: "fake-anthropic", type: "anthropic", baseUrl: fakeUrl, apiKeyEnv: "FAKE_OPENAI_KEY", timeoutMs: 5000, streamIdleTimeoutMs: 3000 },
      { name: "fake-azure", type: "azure", baseUrl: fakeUrl, apiKeyEnv: "FAKE_OPENAI_KEY", apiVersion: "2024-10-21", timeoutMs: 5000 },
    ],
    models: [
      { name: "gpt-4.1-mini", provider: "fake-openai" },
      { name: "text-embedding-3-small", provider: "fake-openai" },
      { name: "claude-sonnet-4-5", provider: "fake-anthropic" },
      { name: "azure-gpt", provider: "fake-azure", upstreamModel: "gpt41-deployment", price: { inputPerMTok: 0.4, outputPerMTok: 1.6 } },
    ],
    guardrails: { secrets: { input: "redact", output: "flag" }, pii: { input: "flag", output: "flag" }, injection: { input: "flag" } },
    ...extra,
  };
}
