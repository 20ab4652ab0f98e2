import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import { Agent as UndiciAgent, fetch as undiciFetch } from "undici";
import type { AccessGate, GateDecision, GateRequest } from "../../src/policy/index.js";
import type { ControlPlane } from "../../src/server/index.js";
import type { TestAgent } from "./agent.js";

/**
 * A stand-in for the access layer while it is being built: it resolves the caller's
 * roles and labels from the real agent registry, allows the models it is told to, and
 * understands test delegation tokens `td.<id>.<task>[.<maxSpendUsd>]`. It implements
 * the same AccessGate contract the real gate does.
 */
export function testGate(plane: () => ControlPlane, allow: { models: string[] | "*"; deny?: string[] } = { models: "*" }): AccessGate & { requests: GateRequest[] } {
  const requests: GateRequest[] = [];
  return {
    requests,
    async authorize(request: GateRequest): Promise<GateDecision> {
      requests.push(request);
      const agent = request.caller.agent ? await plane().context.agents.get(request.caller.agent) : undefined;
      const principal = { kind: "agent" as const, name: agent?.name ?? request.caller.spiffeId, spiffeId: request.caller.spiffeId, roles: agent?.roles ?? [], labels: agent?.labels ?? {} };
      let delegation: GateDecision["delegation"];
      const obligations: GateDecision["obligations"] = [];
      if (request.delegationToken) {
        const [prefix, id, task, ...spend] = request.delegationToken.split(".");
        const maxSpend = spend.join(".");
        if (prefix !== "td" || !id || !task) return { allow: false, reasons: ["denied: the delegation token is not valid"], obligations: [], policyIds: [], principal, deniedBy: "delegation" };
        delegation = { id, task, delegator: "user:alice", chain: ["user:alice", `agent:${principal.name}`], expiresAt: Date.now() + 3600_000 };
        if (maxSpend) obligations.push({ kind: "max_spend", usd: Number(maxSpend), delegationId: id });
      }
      const model = request.resource.kind === "llm" ? request.resource.model : "";
      const allowed = (allow.models === "*" || allow.models.includes(model)) && !(allow.deny ?? []).includes(model);
      return {
        allow: allowed,
        reasons: allowed ? [`allowed: role grants llm:${model}`] : [`denied: ${delegation ? `delegation ${delegation.id}` : `agent ${principal.name}'s roles`} do not allow llm:${model}`],
        obligations,
        policyIds: ["test-gate"],
        principal,
        ...(delegation ? { delegation } : {}),
        ...(allowed ? {} : { deniedBy: delegation ? ("delegation" as const) : ("agent_roles" as const) }),
      };
    },
  };
}

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
