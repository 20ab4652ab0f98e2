import { parseDuration } from "../cli/duration.js";
import { MandateError } from "../errors/index.js";
import { type CedarCondition, compileCondition } from "./cedar.js";
import { cachedGlob, type Glob, globMatches } from "./glob.js";
import { type LabelSelector, parseLabelSelector, selectorMatches } from "./labels.js";
import {
  type DbRuleDocument,
  type DelegateRuleDocument,
  EFFECTS,
  type Effect,
  type LlmRuleDocument,
  type McpRuleDocument,
  type ParsedRole,
  parseRoleDocuments,
  RULE_KINDS,
  type RuleKind,
  rulesOf,
} from "./role-document.js";
import type { AccessResource, McpItemKind, StatementClass } from "./types.js";

/**
 * Roles compiled for the hot path: every glob, selector and Cedar condition is compiled
 * once, rules are grouped by effect and resource kind, so a decision walks only the rules
 * that could apply to the resource in front of it.
 */

export interface CompiledRule {
  /** `role:<name>/<effect>.<kind>[<i>]`, what decisions list in policyIds */
  id: string;
  role: string;
  effect: Effect;
  kind: RuleKind;
  /** `allow.mcp[0]` */
  ref: string;
  /** line in the role's YAML */
  line: number;
  actions?: Glob[] | undefined;
  labels?: LabelSelector | undefined;
  condition?: CedarCondition | undefined;
  servers?: Glob[] | undefined;
  /** per MCP item kind; undefined: every item on the matched servers */
  items?: Partial<Record<McpItemKind, Glob[]>> | undefined;
  models?: Glob[] | undefined;
  providers?: Glob[] | undefined;
  databases?: Glob[] | undefined;
  users?: Glob[] | undefined;
  /** undefined: every class */
  statements?: Set<string> | undefined;
  agents?: Glob[] | undefined;
  maxTtlMs?: number | undefined;
}

export interface CompiledRole {
  name: string;
  description?: string | undefined;
  source: string;
  rules: Record<Effect, Record<RuleKind, CompiledRule[]>>;
  approve: Glob[];
}

const globsOf = (patterns: string[] | undefined): Glob[] | undefined => patterns?.map(cachedGlob);

function compileRule(role: ParsedRole, effect: Effect, kind: RuleKind, index: number, raw: McpRuleDocument | LlmRuleDocument | DbRuleDocument | DelegateRuleDocument): CompiledRule {
  const ref = `${effect}.${kind}[${index}]`;
  const rule: CompiledRule = {
    id: `role:${role.document.name}/${ref}`,
    role: role.document.name,
    effect,
    kind,
    ref,
    line: role.lines[ref] ?? 1,
    actions: globsOf(raw.actions),
    labels: raw.labels === undefined ? undefined : parseLabelSelector(raw.labels),
  };
  if (raw.conditions !== undefined) {
    const condition = compileCondition(rulesOf(raw.conditions));
    if ("error" in condition) throw new MandateError("POLICY_INVALID", `role ${rule.role} ${ref}.conditions: ${condition.error}`);
    rule.condition = condition;
  }
  switch (kind) {
    case "mcp": {
      const r = raw as McpRuleDocument;
      rule.servers = globsOf(r.servers);
      const items: Partial<Record<McpItemKind, Glob[]>> = {};
      if (r.tools) items.tool = globsOf(r.tools)!;
      if (r.prompts) items.prompt = globsOf(r.prompts)!;
      if (r.resources) items.resource = globsOf(r.resources)!;
      if (r.client) items.client = globsOf(r.client)!;
      rule.items = Object.keys(items).length > 0 ? items : undefined;
      break;
    }
    case "llm": {
      const r = raw as LlmRuleDocument;
      rule.models = globsOf(r.models);
      rule.providers = globsOf(r.providers);
      break;
    }
    case "db": {
      const r = raw as DbRuleDocument;
      rule.databases = globsOf(r.databases);
      rule.users = globsOf(r.users);
      rule.statements = r.statements && !r.statements.includes("*") ? new Set(r.statements) : undefined;
      break;
    }
    case "delegate": {
      const r = raw as DelegateRuleDocument;
      rule.agents = globsOf(r.agents);
      rule.maxTtlMs = r.max_ttl === undefined ? undefined : parseDuration(r.max_ttl, "max_ttl");
      break;
    }
  }
  return rule;
}

export function compileRole(role: ParsedRole): CompiledRole {
  const rules = {} as CompiledRole["rules"];
  for (const effect of EFFECTS) {
    rules[effect] = { mcp: [], llm: [], db: [], delegate: [] };
    for (const kind of RULE_KINDS) {
      rules[effect][kind] = rulesOf(role.document[effect]?.[kind] as McpRuleDocument[] | undefined).map((raw, i) => compileRule(role, effect, kind, i, raw));
    }
  }
  return { name: role.document.name, description: role.document.description, source: role.source, rules, approve: globsOf(role.document.approve) ?? [] };
}

/**
 * What a stored role that no longer compiles becomes: a role that denies everything, so
 * whoever holds it loses access rather than keeping what its lost deny rules refused.
 */
export function brokenRole(name: string, source: string, problem: string): CompiledRole {
  const rules = {} as CompiledRole["rules"];
  for (const effect of EFFECTS) rules[effect] = { mcp: [], llm: [], db: [], delegate: [] };
  for (const kind of RULE_KINDS) {
    rules.deny[kind] = [{ id: `role:${name}/broken`, role: name, effect: "deny", kind, ref: `stored role does not compile: ${problem}`, line: 1 }];
  }
  return { name, description: `does not compile: ${problem}`, source, rules, approve: [] };
}

/** Compiles one stored role document (a single YAML document). */
export function compileRoleSource(source: string, origin = "stored role"): CompiledRole {
  const [parsed] = parseRoleDocuments(source, origin);
  return compileRole(parsed!);
}

const anyGlob = (globs: Glob[] | undefined, value: string): boolean => {
  if (globs === undefined) return true;
  for (const g of globs) if (globMatches(g, value)) return true;
  return false;
};

/**
 * Whether a rule's selectors (not its condition) match. `statement` is the one statement
 * class being checked for database requests; `ttlExceeded` reports a delegate rule that
 * matched everything but its max_ttl, so the reason can say so.
 */
export function ruleMatches(rule: CompiledRule, action: string, resource: AccessResource, statement: StatementClass | undefined, note?: { ttlExceeded?: CompiledRule }): boolean {
  if (rule.actions && !anyGlob(rule.actions, action)) return false;
  if (rule.labels && !selectorMatches(rule.labels, resource.labels)) return false;
  switch (resource.kind) {
    case "mcp": {
      if (!anyGlob(rule.servers, resource.server)) return false;
      if (rule.items === undefined) return true;
      const globs = rule.items[resource.item];
      return globs !== undefined && anyGlob(globs, resource.name);
    }
    case "llm":
      return anyGlob(rule.models, resource.model) && anyGlob(rule.providers, resource.provider ?? "");
    case "db":
      return anyGlob(rule.databases, resource.database) && anyGlob(rule.users, resource.dbUser) && (rule.statements === undefined || (statement !== undefined && rule.statements.has(statement)));
    case "delegate": {
      if (!anyGlob(rule.agents, resource.agent)) return false;
      if (rule.maxTtlMs !== undefined && resource.ttlMs > rule.maxTtlMs) {
        if (note) note.ttlExceeded = rule;
        return false;
      }
      return true;
    }
  }
}
