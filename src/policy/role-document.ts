import { isMap, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from "yaml";
import { z } from "zod";
import { parseDuration } from "../cli/duration.js";
import { MandateError } from "../errors/index.js";
import { compileCondition } from "./cedar.js";
import { globProblem } from "./glob.js";
import { parseLabelSelector } from "./labels.js";
import { STATEMENT_CLASSES } from "./resources.js";

/**
 * Role documents: YAML in, validated role definitions out, or a POLICY_INVALID error
 * naming the line and the reason. Validation is complete at apply time — globs, label
 * selectors, durations and Cedar conditions are all compiled here — so what is stored
 * always compiles again when a control plane loads it.
 */

export const MAX_APPLY_BYTES = 1024 * 1024;
export const MAX_DOCUMENTS = 500;
export const MAX_ROLE_BYTES = 64 * 1024;
export const MAX_RULES_PER_ROLE = 256;
export const ROLE_NAME = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

const glob = z.string().superRefine((value, ctx) => {
  const problem = globProblem(value);
  if (problem) ctx.addIssue({ code: "custom", message: `invalid glob ${JSON.stringify(value.slice(0, 80))}: ${problem}` });
});
const globs = z.preprocess((v) => (typeof v === "string" ? [v] : v), z.array(glob).min(1).max(64, "at most 64 globs per field"));
const selector = z.string().superRefine((value, ctx) => {
  try {
    parseLabelSelector(value);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
  }
});
/** A single value where a list is expected is a list of one (`tools: read_logs`, one rule instead of a list). */
const listOf = <T extends z.ZodType>(item: T, max: number, what: string) =>
  z.preprocess((v) => (v === undefined || Array.isArray(v) ? v : [v]), z.array(item).min(1).max(max, `at most ${max} ${what}`));
const conditions = listOf(z.string().min(1), 16, "conditions per rule");
const duration = z.string().superRefine((value, ctx) => {
  try {
    parseDuration(value, "max_ttl");
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
  }
});
const common = { actions: globs.optional(), labels: selector.optional(), conditions: conditions.optional(), description: z.string().max(1024).optional() };

const McpRule = z.strictObject({ servers: globs.optional(), tools: globs.optional(), prompts: globs.optional(), resources: globs.optional(), client: globs.optional(), ...common });
const LlmRule = z.strictObject({ models: globs.optional(), providers: globs.optional(), ...common });
const DbRule = z.strictObject({
  databases: globs.optional(),
  users: globs.optional(),
  statements: z.array(z.enum(["*", ...STATEMENT_CLASSES] as [string, ...string[]])).min(1).max(16).optional(),
  ...common,
});
const DelegateRule = z.strictObject({ agents: globs.optional(), max_ttl: duration.optional(), ...common });

const oneOrMany = <T extends z.ZodType>(rule: T) => listOf(rule, MAX_RULES_PER_ROLE, "rules of one kind in a role");
const RuleBlock = z.strictObject({ mcp: oneOrMany(McpRule).optional(), llm: oneOrMany(LlmRule).optional(), db: oneOrMany(DbRule).optional(), delegate: oneOrMany(DelegateRule).optional() });

export const RoleDocumentSchema = z.strictObject({
  kind: z.literal("role"),
  name: z.string().regex(ROLE_NAME, "a role name is lower-case letters, digits, '.', '_' and '-' (at most 64)"),
  description: z.string().max(1024).optional(),
  allow: RuleBlock.optional(),
  deny: RuleBlock.optional(),
  require_approval: RuleBlock.optional(),
  /** resource globs whose access requests a holder of this role may approve */
  approve: globs.optional(),
});

export type RoleDocument = z.infer<typeof RoleDocumentSchema>;
export type McpRuleDocument = z.infer<typeof McpRule>;
export type LlmRuleDocument = z.infer<typeof LlmRule>;
export type DbRuleDocument = z.infer<typeof DbRule>;
export type DelegateRuleDocument = z.infer<typeof DelegateRule>;
export const EFFECTS = ["allow", "deny", "require_approval"] as const;
export type Effect = (typeof EFFECTS)[number];
export const RULE_KINDS = ["mcp", "llm", "db", "delegate"] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

export interface ParsedRole {
  document: RoleDocument;
  /** the document's own YAML text, as applied */
  source: string;
  /** 1-based line of each rule in `source`, keyed `allow.mcp[0]` */
  lines: Record<string, number>;
}

function invalid(message: string, details: Record<string, unknown> = {}): never {
  throw new MandateError("POLICY_INVALID", message, { details });
}

/** The normalised list of rules a block holds for a kind. */
export function rulesOf<T>(value: T | T[] | undefined): T[] {
  return value === undefined ? [] : Array.isArray(value) ? value : [value];
}

/**
 * The YAML node a validation path points at. Paths come from the normalised value, where a
 * single rule object is a list of one, so a numeric step on a map stays on the map.
 */
function nodeAt(doc: Document, path: (string | number)[]): Node[] {
  const trail: Node[] = [];
  let node = doc.contents as Node | null;
  if (node) trail.push(node);
  for (const step of path) {
    if (!node) break;
    if (isSeq(node) && typeof step === "number") node = (node.items[step] as Node | undefined) ?? null;
    else if (isMap(node) && typeof step === "string") node = (node.get(step, true) as Node | undefined) ?? null;
    else if (isScalar(node) || (isMap(node) && typeof step === "number" && step === 0)) continue;
    else node = null;
    if (node) trail.push(node);
  }
  return trail;
}

function nodeLine(doc: Document, path: (string | number)[], counter: LineCounter, key?: string): number | undefined {
  const trail = nodeAt(doc, path);
  const last = trail[trail.length - 1];
  if (key !== undefined && last && isMap(last)) {
    const pair = last.items.find((p) => isScalar(p.key) && p.key.value === key);
    const keyNode = pair?.key as Node | undefined;
    if (keyNode?.range) return counter.linePos(keyNode.range[0]).line;
  }
  for (let i = trail.length - 1; i >= 0; i--) {
    const range = trail[i]!.range;
    if (range) return counter.linePos(range[0]).line;
  }
  return undefined;
}

function describePath(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

/**
 * Parses a multi-document YAML text into roles. Every document must be a valid role;
 * the first problem found is thrown, so an apply is all or nothing.
 */
export function parseRoleDocuments(text: string, origin = "input"): ParsedRole[] {
  if (typeof text !== "string") invalid("a role document is YAML text");
  if (Buffer.byteLength(text) > MAX_APPLY_BYTES) invalid(`${origin}: at most ${MAX_APPLY_BYTES} bytes of role documents in one apply`);
  const counter = new LineCounter();
  let docs: Document.Parsed[];
  try {
    docs = parseAllDocuments(text, { lineCounter: counter, uniqueKeys: true, prettyErrors: false }) as Document.Parsed[];
  } catch (error) {
    invalid(`${origin}: not parseable as YAML (${(error as Error).message})`);
  }
  if (!Array.isArray(docs)) invalid(`${origin}: not parseable as YAML`);
  const real = docs.filter((d) => d.contents !== null || d.errors.length > 0);
  if (real.length === 0) invalid(`${origin}: no role documents`);
  if (real.length > MAX_DOCUMENTS) invalid(`${origin}: at most ${MAX_DOCUMENTS} documents in one apply`);
  const seen = new Map<string, number>();
  return real.map((doc, index) => {
    const where = (line: number | undefined) => `${origin}${line ? `:${line}` : ""}`;
    const firstError = doc.errors[0];
    if (firstError) invalid(`${where(counter.linePos(firstError.pos[0]).line)}: invalid YAML: ${firstError.message.split("\n")[0]}`, { line: counter.linePos(firstError.pos[0]).line });
    let start = doc.range[0];
    const end = doc.range[2];
    // The stored document starts after its "---" marker, so its lines are its own.
    const marker = /^---[ \t]*(#[^\n]*)?\r?\n/.exec(text.slice(start, end));
    if (marker) start += marker[0].length;
    const source = text.slice(start, end);
    const startLine = counter.linePos(start).line;
    if (Buffer.byteLength(source) > MAX_ROLE_BYTES) invalid(`${where(startLine)}: a role document is at most ${MAX_ROLE_BYTES} bytes`, { line: startLine });
    let value: unknown;
    try {
      // No aliases at all: they are how small YAML expands into huge data.
      value = doc.toJS({ maxAliasCount: 0 });
    } catch (error) {
      invalid(`${where(startLine)}: ${(error as Error).message.split("\n")[0]}`, { line: startLine });
    }
    const parsed = RoleDocumentSchema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const path = issue.path.filter((p): p is string | number => typeof p !== "symbol");
      const unknownKey = issue.code === "unrecognized_keys" ? issue.keys[0] : undefined;
      const line = nodeLine(doc, path, counter, unknownKey);
      const at = describePath(unknownKey ? [...path, unknownKey] : path) || "document";
      const message = issue.code === "unrecognized_keys" ? `unknown field ${JSON.stringify(unknownKey)}` : issue.message;
      invalid(`${where(line)}: ${at}: ${message}`, { line, path: at, document: index });
    }
    const document = parsed.data;
    const lines: Record<string, number> = {};
    let ruleCount = 0;
    for (const effect of EFFECTS) {
      for (const kind of RULE_KINDS) {
        const raw = document[effect]?.[kind];
        const rules = rulesOf<{ conditions?: string | string[] }>(raw);
        ruleCount += rules.length;
        rules.forEach((rule, i) => {
          const path = [effect, kind, i];
          const line = nodeLine(doc, path, counter) ?? startLine;
          lines[`${effect}.${kind}[${i}]`] = line - startLine + 1;
          if (effect !== "allow" && (rule as { max_ttl?: string }).max_ttl !== undefined) {
            invalid(`${where(line)}: ${describePath(path)}.max_ttl: max_ttl caps what an allow rule permits; it has no meaning under ${effect}`, { line, role: document.name });
          }
          if (rule.conditions !== undefined) {
            const compiled = compileCondition(rulesOf(rule.conditions));
            if ("error" in compiled) {
              const conditionLine = nodeLine(doc, [...path, "conditions"], counter) ?? line;
              invalid(`${where(conditionLine)}: ${describePath(path)}.conditions: ${compiled.error}`, { line: conditionLine, role: document.name });
            }
          }
        });
      }
    }
    if (ruleCount > MAX_RULES_PER_ROLE) invalid(`${where(startLine)}: a role has at most ${MAX_RULES_PER_ROLE} rules (${document.name} has ${ruleCount})`, { line: startLine });
    const previous = seen.get(document.name);
    if (previous !== undefined) invalid(`${where(startLine)}: role ${document.name} is defined twice in one apply (also document ${previous + 1})`, { line: startLine });
    seen.set(document.name, index);
    return { document, source: source.trimEnd() + "\n", lines };
  });
}
