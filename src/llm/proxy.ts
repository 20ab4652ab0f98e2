import type { FastifyReply, FastifyRequest } from "fastify";
import { type AuditActor, type AuditEvent, type AuditEventInput, type AuditLog, ulid } from "../audit/index.js";
import { MandateError, isMandateError } from "../errors/index.js";
import type { AccessGate, AuthenticatedCaller, GateDecision } from "../policy/index.js";
import type { WorkloadCredentials } from "../server/workload-auth.js";
import type { Budgets, BudgetHold } from "./budgets.js";
import type { LlmConfig } from "./config.js";
import { type GuardPolicy, Guardrails, type Verdict, blockedError } from "./guardrails/index.js";
import { StreamGuard } from "./guardrails/stream-guard.js";
import type { LimitLease, RateLimits, Subject } from "./limits.js";
import type { LlmMetrics } from "./metrics.js";
import type { PriceTable } from "./prices.js";
import type { LlmRecorder, StoredTranscript } from "./recorder.js";
import type { ModelRegistry, ResolvedModel, ResolvedTarget } from "./registry.js";
import { type RelayResult, relayError, relayJson, relayStream } from "./relay.js";
import type { AttemptRecord, Router } from "./router.js";
import { countTextTokens, estimateInputTokens } from "./tokens.js";
import { ENDPOINT_ACTION, ENDPOINT_FORMAT, type Endpoint, type Usage, type WireFormat } from "./types.js";
import { UpstreamError, type UpstreamResponse, sendUpstream } from "./upstream.js";
import { type Json, type RequestView, WIRES, type Wire, errorBody } from "./wire/index.js";

export interface LlmProxyDeps {
  config: LlmConfig;
  registry: ModelRegistry;
  gate: AccessGate;
  audit: AuditLog;
  authenticate: (request: FastifyRequest, attempted: string) => Promise<WorkloadCredentials>;
  limits: RateLimits;
  budgets: Budgets;
  prices: PriceTable;
  guardrails: Guardrails;
  recorder: LlmRecorder;
  metrics: LlmMetrics;
  router: Router;
  now?: () => number;
  log?: (message: string, error: unknown) => void;
}

/** One request on its way through the proxy. */
interface Call {
  id: string;
  endpoint: Endpoint;
  wire: Wire;
  format: WireFormat;
  started: number;
  startedAt: number;
  address: string;
  caller?: AuthenticatedCaller;
  decision?: GateDecision;
  subject?: Subject;
  model?: ResolvedModel;
  view?: RequestView;
  inputVerdicts: Verdict[];
  estimate?: { inputTokens: number; outputTokens: number; costNano: number };
}

const EVENT_TYPE = "llm.request";
const NON_RETRYABLE = new Set(["BUDGET_EXCEEDED", "PERMISSION_DENIED", "GUARDRAIL_BLOCKED", "NOT_FOUND", "MALFORMED_REQUEST", "BODY_TOO_LARGE", "UNAUTHENTICATED", "INVALID_JWT", "JWT_EXPIRED", "JWT_AUDIENCE_MISMATCH", "LOCKED", "INVALID_CERTIFICATE"]);
const OUTCOME: Record<string, string> = { RATE_LIMITED: "rate_limited", BUDGET_EXCEEDED: "over_budget", GUARDRAIL_BLOCKED: "guardrail", PERMISSION_DENIED: "denied", MALFORMED_REQUEST: "invalid", BODY_TOO_LARGE: "invalid", NOT_FOUND: "invalid" };

/**
 * The LLM proxy's request path: authenticate the caller, resolve the model, ask the
 * access gate, screen the prompt, charge rate limits, reserve budget, make the audit
 * record durable, then route to a provider and relay its answer byte for byte; once
 * the answer has gone, settle usage and cost and record the outcome, the transcript and
 * the metrics. Every refusal is in the caller's wire format and names its reason.
 */
export class LlmProxy {
  private readonly now: () => number;
  /** Outcome recording still running for answered requests (`settled`, shutdown). */
  private readonly completing = new Set<Promise<void>>();

  constructor(private readonly deps: LlmProxyDeps) {
    this.now = deps.now ?? Date.now;
  }

  async handle(endpoint: Endpoint, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const call: Call = { id: ulid(), endpoint, wire: WIRES[endpoint], format: ENDPOINT_FORMAT[endpoint], started: performance.now(), startedAt: this.now(), address: request.ip, inputVerdicts: [] };
    try {
      await this.serve(call, request, reply);
    } catch (error) {
      await this.refuse(call, error, reply);
    }
  }

  private async serve(call: Call, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const d = this.deps;
    const credentials = await d.authenticate(request, EVENT_TYPE);
    call.caller = credentials.caller;
    const body = parseBody(request.body);
    const view = call.wire.inspect(body);
    call.view = view;
    const model = d.registry.model(view.model);
    if (!model) throw new MandateError("NOT_FOUND", `The model \`${view.model}\` does not exist or is not served by this proxy; GET /llm/v1/models lists the models you may use`, { details: { param: "model" } });
    call.model = model;
    const format = model.targets[0]!.provider.format;
    if (format !== call.format) {
      const where = format === "anthropic" ? "/llm/anthropic/v1/messages" : "/llm/v1/chat/completions";
      throw new MandateError("MALFORMED_REQUEST", `model ${model.name} is served by ${format === "anthropic" ? "an Anthropic" : "an OpenAI-format"} provider; call ${where}`, { details: { param: "model" } });
    }

    const decision = await d.gate.authorize({
      caller: credentials.caller,
      delegationToken: credentials.delegationToken,
      action: ENDPOINT_ACTION[call.endpoint],
      resource: { kind: "llm", model: model.name, provider: model.targets[0]!.provider.name },
      context: { endpoint: call.endpoint, stream: view.stream },
      correlation: { request: call.id },
    });
    call.decision = decision;
    const principal = decision.principal;
    call.subject = { agent: principal.kind === "agent" ? principal.name : undefined, team: principal.labels.team, delegation: decision.delegation?.id, model: model.name };
    if (!decision.allow) throw denial(decision);

    const policy = d.guardrails.policy(principal.roles, model.name);
    if (Guardrails.active(policy, "input")) {
      const screened = await d.guardrails.screen(view.texts, policy, "input", { model: model.name, agent: call.subject.agent, team: call.subject.team });
      call.inputVerdicts = screened.verdicts;
      this.countVerdicts(screened.verdicts);
      if (screened.blocked) throw blockedError(screened.blocked);
    }

    const inputTokens = estimateInputTokens(view.texts);
    const outputTokens = call.endpoint === "embeddings" ? 0 : (view.maxOutputTokens ?? d.config.defaultMaxOutputTokens);
    call.estimate = { inputTokens, outputTokens, costNano: 0 };
    const lease = await d.limits.acquire(call.subject, inputTokens + outputTokens);
    let hold: BudgetHold | undefined;
    try {
      hold = await this.reserveBudget(call, model, inputTokens, outputTokens);
    } catch (error) {
      lease.settle(0);
      throw error;
    }

    const intent = this.intentEvent(call);
    const durable = d.config.auditBeforeForward === "durable";
    let intentWrite: Promise<AuditEvent> | undefined = d.audit.append(intent);
    let recorded: AuditEvent | undefined;
    if (durable) {
      try {
        recorded = await intentWrite;
      } catch (error) {
        lease.settle(0);
        await hold?.settle(0).catch(() => undefined);
        throw auditFailure(error);
      }
      intentWrite = undefined;
    }
    await this.forward(call, request, reply, body, policy, lease, hold, recorded, intentWrite);
  }

  private async reserveBudget(call: Call, model: ResolvedModel, inputTokens: number, outputTokens: number): Promise<BudgetHold | undefined> {
    const d = this.deps;
    const ceilings = call.decision!.obligations.flatMap((o) => (o.kind === "max_spend" ? [{ delegationId: o.delegationId, usd: o.usd }] : []));
    const rules = d.budgets.rulesFor(call.subject!, ceilings);
    if (rules.length === 0) return undefined;
    // The dearest target bounds the cost whichever one ends up serving the request.
    let costNano = 0;
    for (const target of model.targets) {
      const estimate = d.prices.estimate(target, inputTokens, outputTokens);
      if (estimate.unpriced) {
        throw new MandateError("BUDGET_EXCEEDED", `budget: model ${model.name} (${target.id}) has no known price, so spend under the ${rules[0]!.scope} ${rules[0]!.name} budget cannot be bounded; an operator must add a price for it (models[].price in the LLM config)`);
      }
      costNano = Math.max(costNano, estimate.nanoUsd);
    }
    call.estimate!.costNano = costNano;
    return d.budgets.reserve(rules, costNano, call.id);
  }

  private async forward(call: Call, request: FastifyRequest, reply: FastifyReply, body: Json, policy: GuardPolicy, lease: LimitLease, hold: BudgetHold | undefined, recorded: AuditEvent | undefined, intentWrite: Promise<AuditEvent> | undefined): Promise<void> {
    const d = this.deps;
    const model = call.model!;
    const view = call.view!;
    const abort = new AbortController();
    const res = reply.raw;
    reply.hijack();
    const onClose = () => {
      if (!res.writableFinished) abort.abort();
    };
    res.on("close", onClose);
    const bodies = new Map<string, { bytes: Buffer; hideUsage: boolean }>();
    const bodyFor = (target: ResolvedTarget) => {
      let prepared = bodies.get(target.upstreamModel);
      if (!prepared) {
        const upstream = call.wire.upstreamBody(body, target.upstreamModel, { includeModel: true });
        prepared = { bytes: Buffer.from(JSON.stringify(upstream.body)), hideUsage: upstream.hideUsage };
        bodies.set(target.upstreamModel, prepared);
      }
      return prepared;
    };
    let result: RelayResult | undefined;
    let target: ResolvedTarget | undefined;
    let attempts: AttemptRecord[] = [];
    let failure: unknown;
    try {
      const routed = await d.router.route(model, (t) => sendUpstream(t, call.endpoint, bodyFor(t).bytes, request.headers, view.stream, abort.signal), abort.signal, discard);
      target = routed.target;
      attempts = routed.attempts;
      for (const a of attempts) d.metrics.attempts.inc({ target: a.target, outcome: a.status !== undefined ? String(a.status) : "error" });
      if (intentWrite) {
        // Concurrent mode: nothing reaches the caller until the record is durable.
        try {
          recorded = await intentWrite;
        } catch (error) {
          discard(routed.response);
          throw auditFailure(error);
        }
      }
      const extra = { "x-mandate-request-id": call.id, "x-mandate-target": target.id };
      const response = routed.response;
      if (response.status >= 300) result = await relayError(response, res, extra, call.started);
      else if (view.stream && isEventStream(response)) {
        result = await relayStream(response, res, extra, {
          wire: call.wire,
          format: call.format,
          target,
          hideUsage: bodyFor(target).hideUsage,
          guard: Guardrails.screensOutput(policy) ? new StreamGuard(d.guardrails.detectors(policy, "output").filter((x) => x.action === "redact" || x.action === "block")) : undefined,
          started: call.started,
        });
      } else {
        result = await relayJson(
          call.wire,
          response,
          res,
          extra,
          {
            policy,
            rewrites: Guardrails.screensOutput(policy),
            screen: async (json) => {
              if (!Guardrails.active(policy, "output")) return { verdicts: [], blocked: undefined, changed: false };
              return d.guardrails.screen(call.wire.output(json).texts, policy, "output", { model: model.name, agent: call.subject!.agent, team: call.subject!.team });
            },
          },
          call.started,
          (verdict) => this.sendError(res, call.format, blockedError(verdict), call.id),
        );
      }
    } catch (error) {
      failure = error;
      if (!res.headersSent && !res.destroyed) this.sendError(res, call.format, asProxyError(error), call.id);
      else if (!res.writableEnded) res.destroy();
    } finally {
      res.off("close", onClose);
    }
    const completing = this.complete(call, { result, target, attempts, failure, lease, hold, recorded });
    this.completing.add(completing);
    try {
      await completing;
    } finally {
      this.completing.delete(completing);
    }
  }

  /** Resolves once every request answered so far has recorded its outcome, usage and alerts. */
  async settled(): Promise<void> {
    while (this.completing.size > 0) await Promise.all(this.completing);
  }

  private async complete(call: Call, o: { result: RelayResult | undefined; target: ResolvedTarget | undefined; attempts: AttemptRecord[]; failure: unknown; lease: LimitLease; hold: BudgetHold | undefined; recorded: AuditEvent | undefined }): Promise<void> {
    const d = this.deps;
    try {
      const { result, target } = o;
      const view = call.view!;
      const ok = !!result && result.status < 300 && !result.blocked && !result.upstreamFailure && !result.clientAborted;
      // Providers bill what they generated: a stream cut short still cost its tokens.
      const delivered = !!result && result.status < 300;
      const usage = delivered ? this.finalUsage(call, result!) : { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, estimated: false };
      const cost = delivered && target ? d.prices.cost(target, usage) : { nanoUsd: 0, unpriced: false };
      o.lease.settle(usage.inputTokens + usage.outputTokens);
      const crossings = o.hold ? await o.hold.settle(cost.nanoUsd).catch((error: unknown) => (this.deps.log?.("budget settle failed", error), [])) : [];
      const subject = call.subject!;
      const labels = { model: call.model!.name, agent: subject.agent ?? "", team: subject.team ?? "" };
      const outcome = ok ? "ok" : result?.blocked ? "guardrail" : o.failure ? (OUTCOME[isMandateError(o.failure) ? o.failure.code : ""] ?? "failed") : "upstream_error";
      d.metrics.requests.inc({ endpoint: call.endpoint, provider: target?.provider.name ?? "", outcome, ...labels });
      d.metrics.tokens.inc({ ...labels, kind: "input" }, usage.inputTokens);
      d.metrics.tokens.inc({ ...labels, kind: "output" }, usage.outputTokens);
      if (usage.cachedInputTokens) d.metrics.tokens.inc({ ...labels, kind: "cached_input" }, usage.cachedInputTokens);
      if (usage.reasoningTokens) d.metrics.tokens.inc({ ...labels, kind: "reasoning" }, usage.reasoningTokens);
      if (cost.nanoUsd) d.metrics.cost.inc(labels, cost.nanoUsd / 1e9);
      const seconds = (performance.now() - call.started) / 1000;
      d.metrics.duration.observe({ endpoint: call.endpoint, model: call.model!.name, stream: String(view.stream) }, seconds);
      if (result?.firstByteMs !== undefined) d.metrics.firstByte.observe({ endpoint: call.endpoint, model: call.model!.name }, result.firstByteMs / 1000);
      if (result) this.countVerdicts(result.outputVerdicts);

      const status = ok ? "ok" : result?.clientAborted ? "client_aborted" : result?.upstreamFailure ? "upstream_failed" : result?.blocked ? "blocked" : result ? `http_${result.status}` : "failed";
      const transcript: StoredTranscript | undefined = o.recorded
        ? d.recorder.recordTranscript({
            time: call.startedAt,
            eventId: o.recorded.id,
            agent: subject.agent,
            delegationId: subject.delegation,
            taskId: call.decision?.delegation?.task,
            model: call.model!.name,
            prompt: view.texts.map((t) => `[${t.role}] ${t.text}`).join("\n"),
            response: result?.outputText ?? "",
            guardrails: [...call.inputVerdicts, ...(result?.outputVerdicts ?? [])],
          })
        : undefined;
      d.recorder.recordUsage({
        time: call.startedAt,
        agent: subject.agent,
        team: subject.team,
        delegationId: subject.delegation,
        taskId: call.decision?.delegation?.task,
        model: call.model!.name,
        provider: target?.provider.name,
        upstreamModel: target?.upstreamModel,
        endpoint: call.endpoint,
        status,
        usage,
        costNano: cost.nanoUsd,
        latencyMs: seconds * 1000,
        eventId: o.recorded?.id,
      });
      const code = ok ? "OK" : o.failure && isMandateError(o.failure) ? o.failure.code : result?.blocked ? "GUARDRAIL_BLOCKED" : result?.clientAborted ? "CLIENT_ABORTED" : result?.upstreamFailure ? "UPSTREAM_FAILED" : "UPSTREAM_ERROR";
      const base = this.eventBase(call);
      // The answer has gone out; the outcome rides in the next request's intent commit (or commits
      // alone within milliseconds), so that commit does not first wait for this one's sync.
      await d.audit.appendDeferred({
        ...base,
        code,
        correlation: { ...base.correlation, ...(o.recorded ? { parentEvent: o.recorded.id } : {}) },
        target: { ...base.target, ...(target ? { provider: target.provider.name, upstreamModel: target.upstreamModel } : {}) },
        outcome: ok ? { status: "ok", latencyMs: Math.round(seconds * 1000) } : { status: "error", error: code, message: describeFailure(result, o.failure), latencyMs: Math.round(seconds * 1000) },
        details: {
          status,
          httpStatus: result?.status,
          stream: view.stream,
          usage,
          costUsd: cost.nanoUsd / 1e9,
          ...(cost.unpriced ? { unpriced: true } : {}),
          attempts: o.attempts,
          toolCalls: result?.toolCalls ?? [],
          guardrails: { input: call.inputVerdicts, output: result?.outputVerdicts ?? [] },
          ...(transcript ? { transcript: { id: transcript.id, sha256: transcript.sha256, truncated: transcript.truncated } } : {}),
        },
      });
      for (const crossing of crossings) {
        await d.audit.append({
          ...base,
          type: "llm.budget.threshold",
          code: "ALERT",
          correlation: { ...base.correlation, ...(o.recorded ? { parentEvent: o.recorded.id } : {}) },
          outcome: { status: "ok", message: `${crossing.rule.scope} ${crossing.rule.name} has spent $${crossing.spentUsd.toFixed(4)}, over ${crossing.rule.softPercent}% of its ${crossing.rule.period} $${crossing.rule.limitUsd} budget` },
          details: { alert: true, budget: crossing.rule, spentUsd: crossing.spentUsd },
        });
      }
    } catch (error) {
      this.deps.log?.("recording an LLM request's outcome failed", error);
    }
  }

  /** The provider's usage when it reported one; otherwise the tokenizer's count of what was sent and received. */
  private finalUsage(call: Call, result: RelayResult): Usage {
    const reported = result.usage;
    if (reported && reported.inputTokens !== undefined && (reported.outputTokens !== undefined || call.endpoint === "embeddings")) {
      return { inputTokens: reported.inputTokens, outputTokens: reported.outputTokens ?? 0, cachedInputTokens: reported.cachedInputTokens ?? 0, cacheWriteTokens: reported.cacheWriteTokens ?? 0, reasoningTokens: reported.reasoningTokens ?? 0, estimated: false };
    }
    const input = reported?.inputTokens ?? estimateInputTokens(call.view!.texts);
    return { inputTokens: input, outputTokens: countTextTokens(result.outputText), cachedInputTokens: reported?.cachedInputTokens ?? 0, cacheWriteTokens: 0, reasoningTokens: 0, estimated: true };
  }

  private countVerdicts(verdicts: Verdict[]): void {
    for (const v of verdicts) this.deps.metrics.guardrails.inc({ detector: v.detector, direction: v.direction, action: v.action });
  }

  private eventBase(call: Call): Omit<AuditEventInput, "code" | "outcome"> {
    const caller = call.caller;
    const decision = call.decision;
    const actor: AuditActor = caller
      ? { kind: caller.kind === "admin" ? "admin" : caller.kind === "user" ? "user" : "agent", spiffeId: caller.spiffeId, ...(caller.agent ? { agent: caller.agent } : {}), ...(caller.instanceId ? { instance: caller.instanceId } : {}), address: call.address }
      : { kind: "anonymous", address: call.address };
    return {
      type: EVENT_TYPE,
      actor,
      ...(decision?.delegation ? { delegation: { id: decision.delegation.id, delegator: decision.delegation.delegator, task: decision.delegation.task, chain: decision.delegation.chain } } : {}),
      correlation: { request: call.id, ...(decision?.delegation ? { task: decision.delegation.task } : {}) },
      target: { model: call.model?.name ?? call.view?.model, endpoint: call.endpoint, ...(call.subject?.team ? { team: call.subject.team } : {}) },
      ...(decision ? { decision: { allow: decision.allow, policy: decision.policyIds.join(","), reasons: decision.reasons } } : {}),
    };
  }

  private intentEvent(call: Call): AuditEventInput {
    const e = call.estimate!;
    return {
      ...this.eventBase(call),
      code: "INTENT",
      outcome: { status: "ok", message: "request authorized; sending to the provider" },
      details: {
        stream: call.view!.stream,
        estimate: { inputTokens: e.inputTokens, outputTokens: e.outputTokens, costUsd: e.costNano / 1e9 },
        guardrails: { input: call.inputVerdicts },
        targets: call.model!.targets.map((t) => t.id),
      },
    };
  }

  private async refuse(call: Call, error: unknown, reply: FastifyReply): Promise<void> {
    const e = asProxyError(error);
    if (e.code === "INTERNAL") this.deps.log?.("LLM proxy request failed", error);
    // An unauthenticated caller was already recorded by the authenticator.
    if (call.caller) {
      const subject = call.subject;
      this.deps.metrics.requests.inc({ endpoint: call.endpoint, model: call.model?.name ?? "", provider: "", agent: subject?.agent ?? "", team: subject?.team ?? "", outcome: OUTCOME[e.code] ?? "failed" });
      await this.deps.audit
        .append({ ...this.eventBase(call), code: e.code, outcome: { status: "error", error: e.code, message: e.message, latencyMs: Math.round(performance.now() - call.started) }, details: { guardrails: { input: call.inputVerdicts }, ...(e.details ? { refusal: e.details } : {}) } })
        .catch(() => undefined);
    }
    if (reply.sent || reply.raw.headersSent) return;
    if (reply.raw.destroyed) return;
    this.sendError(reply.raw, call.format, e, call.id);
    reply.hijack();
  }

  private sendError(res: FastifyReply["raw"], format: WireFormat, error: MandateError, requestId: string): void {
    if (res.headersSent || res.destroyed) return;
    const body = JSON.stringify(errorBody(format, error, requestId));
    const headers: Record<string, string> = { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), "x-mandate-request-id": requestId };
    const retryAfter = (error.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds;
    if (retryAfter !== undefined) headers["retry-after"] = String(retryAfter);
    // The SDKs retry 4xx/5xx they think transient; a refusal that will not change must not be retried.
    if (NON_RETRYABLE.has(error.code)) headers["x-should-retry"] = "false";
    if (error.code === "RATE_LIMITED") {
      const limit = (error.details as { limit?: { scope: string; name: string; kind: string; limit: number } }).limit;
      if (limit) headers["x-mandate-limit"] = `${limit.scope}=${limit.name}; ${limit.kind}=${limit.limit}`;
    }
    res.writeHead(error.httpStatus, headers);
    res.end(body);
  }
}

function isEventStream(response: UpstreamResponse): boolean {
  return String(response.headers["content-type"] ?? "").startsWith("text/event-stream");
}

function discard(response: UpstreamResponse): void {
  response.body.resume();
  response.body.on("error", () => undefined);
}

function parseBody(raw: unknown): Json {
  if (!Buffer.isBuffer(raw) || raw.length === 0) throw new MandateError("MALFORMED_REQUEST", "the request body must be a JSON object (Content-Type: application/json)");
  let value: unknown;
  try {
    value = JSON.parse(raw.toString("utf8"));
  } catch (error) {
    throw new MandateError("MALFORMED_REQUEST", `We could not parse the JSON body of your request: ${(error as Error).message}`);
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) throw new MandateError("MALFORMED_REQUEST", "the request body must be a JSON object");
  return value as Json;
}

function denial(decision: GateDecision): MandateError {
  const reason = decision.reasons[0] ?? "denied by policy";
  if (decision.accessRequest?.status === "pending") {
    return new MandateError("PERMISSION_DENIED", `approval required: ${reason}; access request ${decision.accessRequest.id} is waiting for approval — retry once it is approved`, {
      details: { reasons: decision.reasons, deniedBy: decision.deniedBy ?? "approval", accessRequest: decision.accessRequest },
    });
  }
  return new MandateError("PERMISSION_DENIED", reason, { details: { reasons: decision.reasons, ...(decision.deniedBy ? { deniedBy: decision.deniedBy } : {}) } });
}

function auditFailure(error: unknown): MandateError {
  return new MandateError("STORE_UNAVAILABLE", `the request was not sent: its audit record could not be written (${(error as Error).message})`);
}

function asProxyError(error: unknown): MandateError {
  if (isMandateError(error)) return error;
  if (error instanceof UpstreamError) return new MandateError(error.kind === "timeout" ? "UPSTREAM_TIMEOUT" : "UPSTREAM_UNAVAILABLE", error.message);
  return new MandateError("INTERNAL", "internal error", { cause: error });
}

function describeFailure(result: RelayResult | undefined, failure: unknown): string {
  if (failure) return (failure as Error).message;
  if (!result) return "no response";
  if (result.clientAborted) return "the caller disconnected before the answer ended; the provider request was aborted";
  if (result.upstreamFailure) return result.upstreamFailure;
  if (result.blocked) return `output withheld by the ${result.blocked.detector} guardrail`;
  return `the provider answered HTTP ${result.status}`;
}
