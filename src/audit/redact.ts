import { createHmac } from "node:crypto";

/**
 * Secrets never reach the audit log. Values are replaced when their field name says
 * they are secret, or when they look like a credential whatever the field is called;
 * fields configured as private are kept checkable but unreadable, as keyed HMACs
 * (an investigator holding a candidate value can test it with `mandate audit hash`).
 */
const SECRET_FIELD = /^(authorization|proxy-authorization|cookie|set-cookie|password|passwd|passphrase|secret|client[-_]?secret|token|access[-_]?token|refresh[-_]?token|id[-_]?token|join[-_]?token|api[-_]?key|x-api-key|private[-_]?key|key[-_]?pem|credentials?)$/i;

const SECRET_PATTERNS: [string, RegExp][] = [
  ["private-key", /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g],
  ["jwt", /\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g],
  ["join-token", /\bmj1\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}\b/g],
  ["bearer", /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/g],
  ["openai-key", /\bsk-(proj-|ant-)?[A-Za-z0-9_-]{20,}/g],
  ["aws-access-key", /\b(AKIA|ASIA)[0-9A-Z]{16}\b/g],
  ["github-token", /\b(ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{20,}/g],
  ["slack-token", /\bxox[abposr]-[A-Za-z0-9-]{10,}/g],
  ["url-password", /(?<=[a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]+(?=@)/gi],
];

/**
 * Every pattern above needs one of these literals (the URL password needs "://"), so a
 * string without any cannot match and skips the nine scans: most audited strings —
 * names, ids, paths — have none. Kept beside the patterns; a property test checks that
 * the shortcut never changes a result.
 */
const ANY_PATTERN_ANCHOR = /-----BEGIN |eyJ|mj1\.|Bearer|Basic|sk-|AKIA|ASIA|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|xox[abposr]-|:\/\//;

export interface RedactionSettings {
  /** Dotted paths (e.g. `details.prompt`) stored as HMACs instead of plain values. */
  hashedFields?: string[];
}

export interface RedactionResult<T> {
  value: T;
  /** Paths whose values were removed or hashed. */
  paths: string[];
}

const MAX_DEPTH = 12;
/** Longer strings are cut before scanning, which also bounds the patterns' worst case. */
export const MAX_AUDITED_STRING = 64 * 1024;

export function hmacValue(key: Buffer, value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  return `hmac-sha256:${createHmac("sha256", key).update(text, "utf8").digest("hex")}`;
}

/** Redacts one string: every credential-shaped substring is replaced by a marker naming its kind. */
export function redactString(text: string): { text: string; changed: boolean } {
  if (!ANY_PATTERN_ANCHOR.test(text)) return { text, changed: false };
  return redactStringFully(text);
}

/** The scans themselves, without the shortcut (exported for the equivalence test). */
export function redactStringFully(text: string): { text: string; changed: boolean } {
  let out = text;
  for (const [kind, pattern] of SECRET_PATTERNS) {
    pattern.lastIndex = 0;
    out = out.replace(pattern, `[REDACTED:${kind}]`);
  }
  return { text: out, changed: out !== text };
}

/** Where credential-shaped substrings are, by kind (the guardrails reuse the audit log's patterns). */
export function credentialSpans(text: string): { kind: string; start: number; end: number }[] {
  const spans: { kind: string; start: number; end: number }[] = [];
  for (const [kind, pattern] of SECRET_PATTERNS) {
    pattern.lastIndex = 0;
    for (const match of text.matchAll(pattern)) spans.push({ kind, start: match.index, end: match.index + match[0].length });
  }
  return spans;
}

/** Returns a redacted deep copy of `value` and the paths that were changed. */
export function redactValue<T>(value: T, hmacKey: Buffer, settings: RedactionSettings = {}, root = ""): RedactionResult<T> {
  const paths: string[] = [];
  const hashed = new Set(settings.hashedFields ?? []);
  const walk = (node: unknown, path: string, depth: number): unknown => {
    if (hashed.has(path) && node !== undefined) {
      paths.push(path);
      return hmacValue(hmacKey, node);
    }
    if (typeof node === "string") {
      if (node.length > MAX_AUDITED_STRING) {
        paths.push(path);
        node = `${node.slice(0, MAX_AUDITED_STRING)}[TRUNCATED:${node.length - MAX_AUDITED_STRING} chars]`;
      }
      const { text, changed } = redactString(node as string);
      if (changed) paths.push(path);
      return text;
    }
    if (typeof node !== "object" || node === null) return node;
    if (depth > MAX_DEPTH) {
      paths.push(path);
      return "[TRUNCATED:depth]";
    }
    if (Array.isArray(node)) return node.map((item, i) => walk(item, `${path}[${i}]`, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(node as Record<string, unknown>)) {
      const childPath = path ? `${path}.${key}` : key;
      if (SECRET_FIELD.test(key) && child !== undefined && child !== null && child !== "") {
        paths.push(childPath);
        out[key] = "[REDACTED]";
      } else {
        out[key] = walk(child, childPath, depth + 1);
      }
    }
    return out;
  };
  return { value: walk(value, root, 0) as T, paths };
}
