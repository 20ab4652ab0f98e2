import { createHash } from "node:crypto";
import * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import type { AccessRequest, AccessResource } from "./types.js";

/**
 * Cedar conditions on role rules. A rule's `conditions` are Cedar expressions (what goes
 * inside `when { … }`); they are wrapped into one `permit(principal, action, resource)`
 * policy with one `when` clause each, so all of them must hold. The policy is parsed once
 * at apply time (and must come out as exactly one policy, so an expression cannot close
 * the clause and smuggle in another), then pre-parsed into the Cedar engine's cache under
 * a content hash: the hot path calls `statefulIsAuthorized`, the package's fastest entry,
 * which does not re-parse the policy text.
 */

export interface CedarCondition {
  /** the id under which the policy set is pre-parsed (content-addressed) */
  id: string;
  text: string;
  expressions: string[];
  /** which parts of the request the expressions can read (NEEDS_* bits); the rest is not marshalled into Cedar */
  needs: number;
}

/**
 * Marshalling a request into the Cedar engine costs more than evaluating it, so each
 * condition is given only the parts its text mentions. A part left out cannot be read,
 * so guessing wrong can only make a condition fail (closed), never pass.
 */
export const NEEDS_ENTITIES = 1;
export const NEEDS_CONTEXT = 2;
export const NEEDS_TIME = 4;
export const NEEDS_DELEGATION = 8;

function needsOf(expressions: string[]): number {
  const text = expressions.join("\n");
  let needs = 0;
  if (/\b(principal|resource)\b/.test(text)) needs |= NEEDS_ENTITIES;
  if (/\bcontext\b/.test(text)) needs |= NEEDS_CONTEXT;
  if (/\btime\b/.test(text)) needs |= NEEDS_TIME;
  if (/\bdelegation\b/.test(text)) needs |= NEEDS_DELEGATION;
  return needs;
}

export const MAX_CONDITION_LENGTH = 8192;

/** Returns the compiled condition, or the reason it is not valid Cedar. */
const prepared = new Map<string, CedarCondition>();

export function compileCondition(expressions: string[]): CedarCondition | { error: string } {
  const key = JSON.stringify(expressions);
  const known = prepared.get(key);
  if (known) return known;
  const compiled = prepareCondition(expressions);
  if (!("error" in compiled)) prepared.set(key, compiled);
  return compiled;
}

function prepareCondition(expressions: string[]): CedarCondition | { error: string } {
  const total = expressions.reduce((n, e) => n + e.length, 0);
  if (total > MAX_CONDITION_LENGTH) return { error: `conditions are at most ${MAX_CONDITION_LENGTH} characters in all` };
  const text = `permit(principal, action, resource)\n${expressions.map((e) => `when {\n${e}\n}`).join("\n")};`;
  const parts = cedar.policySetTextToParts(text);
  if (parts.type === "failure") return { error: `Cedar: ${parts.errors.map(describeCedarError).join("; ")}` };
  if (parts.policies.length !== 1 || parts.policy_templates.length !== 0) {
    return { error: "Cedar: a condition is one expression; it cannot close its `when` clause or add policies" };
  }
  const id = `mandate-${createHash("sha256").update(text).digest("hex").slice(0, 32)}`;
  const answer = cedar.preparsePolicySet(id, { staticPolicies: text });
  if (answer.type === "failure") return { error: `Cedar: ${answer.errors.map(describeCedarError).join("; ")}` };
  return { id, text, expressions, needs: needsOf(expressions) };
}

function describeCedarError(error: { message: string; help?: string | null; sourceLocations?: { label: string | null }[] }): string {
  const label = error.sourceLocations?.find((l) => l.label)?.label;
  return [error.message, label, error.help].filter(Boolean).join(": ");
}

/** What a condition sees. Documented in docs/policy.md; keep the two in step. */
export interface CedarRequest {
  principal: { type: string; id: string };
  action: { type: string; id: string };
  resource: { type: string; id: string };
  context: Record<string, cedar.CedarValueJson>;
  entities: cedar.EntityJson[];
  /**
   * Set when request data had to be left out (too deep, too many values, reserved keys):
   * conditions that read the context then fail closed, so padding arguments cannot hide
   * what a deny condition looks for.
   */
  incomplete?: boolean;
}

const MAX_DEPTH = 8;
const MAX_NODES = 2000;

/**
 * Request data as Cedar values: integers stay numbers (Cedar has only 64-bit integers),
 * other numbers become decimal strings, null and undefined are dropped, arrays become
 * sets, and keys Cedar's JSON format reserves (`__entity`, `__extn`, `__expr`; any key
 * starting with "__") are dropped so tool arguments can never be read as entity
 * references or extension calls. Past a depth of 8 or 2,000 values the rest is dropped.
 * Whatever is dropped (except null) sets `budget.incomplete`.
 */
export function toCedarValue(value: unknown, budget: { nodes: number; incomplete?: boolean } = { nodes: MAX_NODES }, depth = 0): cedar.CedarValueJson | undefined {
  if (budget.nodes-- <= 0) {
    budget.incomplete = true;
    return undefined;
  }
  switch (typeof value) {
    case "string":
    case "boolean":
      return value;
    case "number":
      return Number.isSafeInteger(value) ? value : String(value);
    case "bigint":
      return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value.toString();
    case "object": {
      if (value === null) return undefined;
      if (depth >= MAX_DEPTH) {
        budget.incomplete = true;
        return undefined;
      }
      if (Array.isArray(value)) {
        const out: cedar.CedarValueJson[] = [];
        for (const v of value) {
          const c = toCedarValue(v, budget, depth + 1);
          if (c !== undefined) out.push(c);
        }
        return out;
      }
      const out: Record<string, cedar.CedarValueJson> = {};
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (k.startsWith("__")) {
          budget.incomplete = true;
          continue;
        }
        const c = toCedarValue(v, budget, depth + 1);
        if (c !== undefined) out[k] = c;
      }
      return out;
    }
    default:
      return undefined;
  }
}

function resourceAttributes(resource: AccessResource): Record<string, cedar.CedarValueJson> {
  const labels = (resource.labels ?? {}) as Record<string, string>;
  switch (resource.kind) {
    case "mcp":
      return { kind: "mcp", server: resource.server, item: resource.item, name: resource.name, labels };
    case "llm":
      return { kind: "llm", model: resource.model, provider: resource.provider ?? "", labels };
    case "db":
      return { kind: "db", database: resource.database, dbUser: resource.dbUser, statements: resource.statements, tables: resource.tables, functions: resource.functions, labels };
    case "delegate":
      return { kind: "delegate", agent: resource.agent, ttlSeconds: Math.floor(resource.ttlMs / 1000), labels };
  }
}

/** Builds the Cedar request conditions are evaluated against (with the parts `needs` asks for; all by default). */
export function cedarRequest(request: AccessRequest, resourceId: string, now: number, needs = NEEDS_ENTITIES | NEEDS_CONTEXT | NEEDS_TIME | NEEDS_DELEGATION): CedarRequest {
  const principalType = request.principal.kind === "user" ? "User" : "Agent";
  const principal = { type: principalType, id: request.principal.name };
  const resource = { type: "Resource", id: resourceId };
  const action = { type: "Action", id: request.action };
  if ((needs & NEEDS_CONTEXT) === 0) return { principal, action, resource, context: {}, entities: (needs & NEEDS_ENTITIES) === 0 ? [] : requestEntities(request, principal, resource) };
  const budget: { nodes: number; incomplete?: boolean } = { nodes: MAX_NODES };
  const supplied = (toCedarValue(request.context ?? {}, budget) ?? {}) as Record<string, cedar.CedarValueJson>;
  const context: Record<string, cedar.CedarValueJson> = { args: {}, labels: {}, ...supplied };
  if (needs & NEEDS_TIME) {
    const date = new Date(now);
    context.time = {
      epochSeconds: Math.floor(now / 1000),
      hour: date.getUTCHours(),
      minute: date.getUTCMinutes(),
      weekday: date.getUTCDay(),
      date: date.toISOString().slice(0, 10),
    };
  } else delete context.time;
  delete context.delegation;
  if (request.delegation && needs & NEEDS_DELEGATION) {
    const chain = request.delegation.chain;
    context.delegation = { id: request.delegation.id, task: request.delegation.task, depth: chain.length, root: chain[0] ? `${chain[0].delegator.kind}:${chain[0].delegator.name}` : "" };
  }
  return { principal, action, resource, context, entities: (needs & NEEDS_ENTITIES) === 0 ? [] : requestEntities(request, principal, resource), ...(budget.incomplete ? { incomplete: true } : {}) };
}

function requestEntities(request: AccessRequest, principal: CedarRequest["principal"], resource: CedarRequest["resource"]): cedar.EntityJson[] {
  return [
    {
      uid: principal,
      attrs: { name: request.principal.name, roles: request.principal.roles, labels: request.principal.labels as Record<string, string> },
      parents: [],
    },
    { uid: resource, attrs: resourceAttributes(request.resource), parents: [] },
  ];
}

/**
 * True when the condition holds. An evaluation error (a missing attribute, a type
 * mismatch) is reported as "error" so the caller can fail closed the right way: an
 * allow rule does not allow, a deny or approval rule applies.
 */
export function evaluateCondition(condition: CedarCondition, request: CedarRequest): boolean | "error" {
  if (request.incomplete && condition.needs & NEEDS_CONTEXT) return "error";
  const { principal, action, resource, context, entities } = request;
  const answer = cedar.statefulIsAuthorized({ principal, action, resource, context, entities, preparsedPolicySetId: condition.id });
  if (answer.type === "failure") return "error";
  if (answer.response.diagnostics.errors.length > 0) return "error";
  return answer.response.decision === "allow";
}

/** The unprepared path, for the benchmark's baseline. */
export const cedarIsAuthorized = cedar.isAuthorized;
