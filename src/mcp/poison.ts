import { redactString } from "../audit/index.js";

/**
 * Tool-poisoning and secret detection for what MCP servers say to models: tool, prompt
 * and resource descriptions, and call results. Self-contained on purpose (plain
 * patterns, each linear in its input), so it can be merged with the LLM guardrails.
 */
export type FindingKind =
  | "unicode-tag-characters"
  | "bidi-control"
  | "invisible-characters"
  | "instruction-override"
  | "model-directive"
  | "concealment"
  | "sensitive-file-request"
  | "secret";

export interface Finding {
  kind: FindingKind;
  severity: "high" | "medium";
  /** where in the scanned value, e.g. `description` or `content.0.text` */
  path: string;
  /** a short, printable excerpt (invisible characters shown as \u{…}) */
  excerpt: string;
}

const RULES: { kind: FindingKind; severity: Finding["severity"]; pattern: RegExp }[] = [
  // Unicode tag characters spell out invisible ASCII text that models still read.
  { kind: "unicode-tag-characters", severity: "high", pattern: /[\u{E0000}-\u{E007F}]+/u },
  { kind: "bidi-control", severity: "high", pattern: /[\u202A-\u202E\u2066-\u2069]/u },
  { kind: "invisible-characters", severity: "medium", pattern: /[\u200B-\u200D\u2060-\u2064\uFEFF\u180E]{2,}/u },
  {
    kind: "instruction-override",
    severity: "high",
    pattern: /\b(ignore|disregard|forget|override)\s+(all\s+|any\s+|the\s+|your\s+)?(previous|prior|above|earlier|preceding|other|system)\s+(instructions?|prompts?|rules|directions|messages)/i,
  },
  { kind: "model-directive", severity: "high", pattern: /<\s*\/?\s*(important|system|instructions?|secret|admin)\s*>/i },
  {
    kind: "model-directive",
    severity: "medium",
    pattern: /\b(you|the\s+(assistant|model|ai|agent|llm))\s+(must|should|need\s+to|are\s+required\s+to)\s+(always\s+|first\s+|also\s+)?(read|call|send|include|pass|upload|fetch|invoke|run|execute)\b/i,
  },
  { kind: "concealment", severity: "high", pattern: /\b(do\s+not|don't|never)\s+(tell|inform|mention|reveal|show|disclose)\b.{0,40}?\b(user|human|operator)\b/i },
  {
    kind: "sensitive-file-request",
    severity: "high",
    pattern: /\b(read|cat|open|include|send|pass|upload|attach|provide|copy|print)\b.{0,60}?(~\/\.ssh|\.ssh\/|id_rsa|id_ed25519|\.aws\/credentials|\.env\b|\.npmrc|\.netrc|\.git-credentials|\.kube\/config|\/etc\/shadow|\.docker\/config\.json|private[ _-]?key|api[ _-]?keys?|mcp\.json|\.cursor\/|claude_desktop_config)/i,
  },
];

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/gu, (ch) => `\\u{${ch.codePointAt(0)!.toString(16)}}`).slice(0, 160);
}

/** Instruction-like and invisible content in one string. */
export function scanText(text: string, path: string): Finding[] {
  const findings: Finding[] = [];
  const bounded = text.length > 256 * 1024 ? text.slice(0, 256 * 1024) : text;
  for (const rule of RULES) {
    const match = rule.pattern.exec(bounded);
    if (!match) continue;
    const start = Math.max(0, match.index - 20);
    findings.push({ kind: rule.kind, severity: rule.severity, path, excerpt: printable(bounded.slice(start, match.index + match[0].length + 20)) });
  }
  return findings;
}

/** Every string in a JSON value with its dotted path (bounded depth and count). */
function* stringsIn(value: unknown, path: string, depth = 0): Generator<[string, string]> {
  if (depth > 32) return;
  if (typeof value === "string") yield [path, value];
  else if (Array.isArray(value)) for (let i = 0; i < value.length && i < 10_000; i++) yield* stringsIn(value[i], path ? `${path}.${i}` : String(i), depth + 1);
  else if (typeof value === "object" && value !== null) for (const [k, v] of Object.entries(value)) yield* stringsIn(v, path ? `${path}.${k}` : k, depth + 1);
}

/** Findings in a tool/prompt/resource definition: descriptions, titles and every schema string. */
export function scanDefinition(definition: Record<string, unknown>): Finding[] {
  const findings: Finding[] = [];
  for (const [path, text] of stringsIn(definition, "")) {
    if (path === "_meta" || path.startsWith("_meta.")) continue;
    findings.push(...scanText(text, path));
    if (redactString(text).changed) findings.push({ kind: "secret", severity: "high", path, excerpt: "[a credential-shaped value]" });
  }
  return findings;
}

/**
 * Scans a result for injected instructions and secrets. Secrets are replaced by
 * `[REDACTED:<kind>]` markers in a copy (the original is not modified); the caller
 * decides, per server, whether that copy is sent, the result is blocked, or only flagged.
 */
export function scanResult(result: unknown): { findings: Finding[]; redacted: unknown; secrets: number } {
  const findings: Finding[] = [];
  let secrets = 0;
  const walk = (node: unknown, path: string, depth: number): unknown => {
    if (depth > 32) return node;
    if (typeof node === "string") {
      findings.push(...scanText(node, path));
      const { text, changed } = redactString(node);
      if (changed) {
        secrets++;
        findings.push({ kind: "secret", severity: "high", path, excerpt: printable(text.match(/\[REDACTED:[a-z-]+\]/)?.[0] ?? "[REDACTED]") });
        return text;
      }
      return node;
    }
    if (Array.isArray(node)) {
      let changed = false;
      const out = node.map((item, i) => {
        const next = walk(item, path ? `${path}.${i}` : String(i), depth + 1);
        if (next !== item) changed = true;
        return next;
      });
      return changed ? out : node;
    }
    if (typeof node === "object" && node !== null) {
      let changed = false;
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(node)) {
        // _meta is protocol plumbing, not model input.
        const next = k === "_meta" && depth === 0 ? v : walk(v, path ? `${path}.${k}` : k, depth + 1);
        if (next !== v) changed = true;
        out[k] = next;
      }
      return changed ? out : node;
    }
    return node;
  };
  const redacted = walk(result, "", 0);
  return { findings, redacted, secrets };
}
