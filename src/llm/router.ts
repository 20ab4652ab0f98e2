import { MandateError } from "../errors/index.js";
import { type CircuitBreakers, LatencyTracker } from "./circuit-breaker.js";
import type { ResolvedModel, ResolvedTarget } from "./registry.js";
import { UpstreamError, type UpstreamResponse } from "./upstream.js";

export interface AttemptRecord {
  target: string;
  status?: number;
  error?: string;
  ms: number;
}

export interface RoutedResponse {
  response: UpstreamResponse;
  target: ResolvedTarget;
  attempts: AttemptRecord[];
}

const RETRYABLE_STATUS = new Set([408, 409, 429, 500, 502, 503, 504, 529]);

export function isRetryableStatus(status: number): boolean {
  return RETRYABLE_STATUS.has(status);
}

/** Seconds or an HTTP date (Retry-After), or milliseconds (retry-after-ms, sent by OpenAI). */
export function retryAfterMs(headers: UpstreamResponse["headers"], now = Date.now()): number | undefined {
  const ms = headers["retry-after-ms"];
  if (typeof ms === "string" && /^\d+(\.\d+)?$/.test(ms)) return Math.ceil(Number(ms));
  const value = headers["retry-after"];
  if (typeof value !== "string") return undefined;
  if (/^\d+(\.\d+)?$/.test(value.trim())) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Full jitter: a uniform wait in [0, min(cap, base·2^n)], so retrying clients spread out. */
export function backoffDelay(round: number, baseMs: number, capMs: number, random = Math.random): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** round));
}

function weightedOrder(targets: ResolvedTarget[], random: () => number): ResolvedTarget[] {
  const pool = [...targets];
  const out: ResolvedTarget[] = [];
  while (pool.length) {
    const total = pool.reduce((s, t) => s + t.weight, 0);
    let pick = random() * total;
    let index = pool.findIndex((t) => (pick -= t.weight) < 0);
    if (index < 0) index = pool.length - 1;
    out.push(pool.splice(index, 1)[0]!);
  }
  return out;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new UpstreamError("the request was aborted", "aborted"));
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new UpstreamError("the request was aborted", "aborted"));
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Picks targets for a model by its strategy and tries them: the next target at once
 * after a retryable failure (429, 5xx, timeout, connection error), and after every
 * target of a round has failed, a jittered exponential backoff — or the provider's
 * Retry-After, when it asks for a wait no longer than the cap — before the next round.
 * Targets whose circuit is open are skipped. At most `1 + retries` attempts.
 */
export class Router {
  readonly latency = new LatencyTracker();

  constructor(
    private readonly breakers: CircuitBreakers,
    private readonly random: () => number = Math.random,
  ) {}

  order(model: ResolvedModel): ResolvedTarget[] {
    switch (model.strategy) {
      case "loadbalance":
        return weightedOrder(model.targets, this.random);
      case "latency":
        return [...model.targets].sort((a, b) => this.latency.get(a.id) - this.latency.get(b.id));
      default:
        return model.targets;
    }
  }

  async route(model: ResolvedModel, attempt: (target: ResolvedTarget) => Promise<UpstreamResponse>, signal: AbortSignal, discard: (response: UpstreamResponse) => void): Promise<RoutedResponse> {
    const order = this.order(model).filter((t) => !t.provider.unavailable);
    if (order.length === 0) {
      const why = model.targets.map((t) => t.provider.unavailable).find(Boolean);
      throw new MandateError("UPSTREAM_UNAVAILABLE", `model ${model.name} has no usable provider: ${why ?? "none configured"}`);
    }
    const attempts: AttemptRecord[] = [];
    const maxAttempts = 1 + model.retries;
    let last: { response?: UpstreamResponse; target: ResolvedTarget; error?: UpstreamError } | undefined;
    let round = 0;
    while (attempts.length < maxAttempts) {
      let triedThisRound = 0;
      let waitHint: number | undefined;
      for (const target of order) {
        if (attempts.length >= maxAttempts) break;
        if (!this.breakers.tryAcquire(target.id)) continue;
        triedThisRound++;
        if (last?.response) discard(last.response);
        const started = performance.now();
        try {
          const response = await attempt(target);
          const ms = performance.now() - started;
          attempts.push({ target: target.id, status: response.status, ms: Math.round(ms) });
          if (response.status < 500 || response.status === 501) this.breakers.success(target.id);
          else this.breakers.failure(target.id);
          if (!isRetryableStatus(response.status)) {
            if (response.status < 400) this.latency.record(target.id, ms);
            return { response, target, attempts };
          }
          last = { response, target };
          const hint = retryAfterMs(response.headers);
          if (hint !== undefined) waitHint = Math.max(waitHint ?? 0, hint);
        } catch (error) {
          if (!(error instanceof UpstreamError)) throw error;
          if (error.kind === "aborted") {
            this.breakers.release(target.id);
            throw error;
          }
          this.breakers.failure(target.id);
          attempts.push({ target: target.id, error: error.message, ms: Math.round(performance.now() - started) });
          last = { target, error };
        }
      }
      if (triedThisRound === 0) {
        const retryIn = Math.ceil(this.breakers.retryInMs(order.map((t) => t.id)) / 1000);
        throw new MandateError("UPSTREAM_UNAVAILABLE", `every provider of model ${model.name} is failing (circuit open); retry in about ${retryIn}s`, { details: { retryAfterSeconds: retryIn } });
      }
      if (attempts.length >= maxAttempts) break;
      // A provider asking for a longer wait than the cap is not waited for: the caller gets its answer.
      if (waitHint !== undefined && waitHint > model.maxBackoffMs) break;
      await sleep(waitHint ?? backoffDelay(round, model.backoffMs, model.maxBackoffMs, this.random), signal);
      round++;
    }
    if (last?.response) return { response: last.response, target: last.target, attempts };
    const detail = attempts.map((a) => `${a.target}: ${a.error ?? a.status}`).join("; ");
    throw new MandateError(last?.error?.kind === "timeout" ? "UPSTREAM_TIMEOUT" : "UPSTREAM_UNAVAILABLE", `model ${model.name}: no provider answered (${detail})`);
  }
}
