import { Counter, Histogram, type Registry } from "prom-client";

/** The proxy's Prometheus metrics, on the control plane's registry (served at GET /metrics). */
export class LlmMetrics {
  readonly requests: Counter<"endpoint" | "model" | "provider" | "agent" | "team" | "outcome">;
  readonly tokens: Counter<"model" | "agent" | "team" | "kind">;
  readonly cost: Counter<"model" | "agent" | "team">;
  readonly duration: Histogram<"endpoint" | "model" | "stream">;
  readonly firstByte: Histogram<"endpoint" | "model">;
  readonly attempts: Counter<"target" | "outcome">;
  readonly guardrails: Counter<"detector" | "direction" | "action">;

  constructor(registry: Registry) {
    const registers = [registry];
    this.requests = new Counter({ name: "mandate_llm_requests_total", help: "Model requests by outcome (ok, upstream_error, denied, rate_limited, over_budget, guardrail, invalid, failed)", labelNames: ["endpoint", "model", "provider", "agent", "team", "outcome"], registers });
    this.tokens = new Counter({ name: "mandate_llm_tokens_total", help: "Tokens by kind (input, output, cached_input, reasoning)", labelNames: ["model", "agent", "team", "kind"], registers });
    this.cost = new Counter({ name: "mandate_llm_cost_usd_total", help: "Spend in US dollars from the price table", labelNames: ["model", "agent", "team"], registers });
    this.duration = new Histogram({ name: "mandate_llm_request_duration_seconds", help: "Time from request to last byte", labelNames: ["endpoint", "model", "stream"], buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120], registers });
    this.firstByte = new Histogram({ name: "mandate_llm_time_to_first_byte_seconds", help: "Time from request to the first byte sent to the caller", labelNames: ["endpoint", "model"], buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers });
    this.attempts = new Counter({ name: "mandate_llm_upstream_attempts_total", help: "Attempts per provider target (status code or error kind)", labelNames: ["target", "outcome"], registers });
    this.guardrails = new Counter({ name: "mandate_llm_guardrail_verdicts_total", help: "Guardrail verdicts", labelNames: ["detector", "direction", "action"], registers });
  }
}
