import { creator as recommendedPreset } from "@secretlint/secretlint-rule-preset-recommend";
import { credentialSpans } from "../../audit/index.js";
import { type Finding, mergeFindings, scanWindows } from "./finding.js";

interface SecretlintRule {
  meta: { id: string; type?: string };
  create(context: unknown, options: Record<string, unknown>): { file?: (source: unknown) => void | Promise<void> };
}

/**
 * Secrets in prompt or model text, found by secretlint's recommended rule set (AWS,
 * GCP, GitHub, Slack, npm, OpenAI, Anthropic, SendGrid, Shopify, Linear, 1Password,
 * private keys, basic auth and database URLs with passwords), maintained upstream, plus
 * the credential shapes the audit log already redacts (JWTs, bearer tokens, Mandate join
 * tokens, generic `sk-` keys). The rules are run directly rather than through
 * secretlint's file linter, which costs about a millisecond per call in setup; the rules
 * themselves take tens of microseconds.
 */
const rules = ((recommendedPreset as unknown as { rules: SecretlintRule[] }).rules ?? []).filter((r) => r.meta.type !== "filter" && !r.meta.id.endsWith("filter-comments"));

type Handler = { kind: string; file: (source: unknown) => void | Promise<void> };

function handlersFor(report: (kind: string, range: [number, number]) => void): Handler[] {
  return rules.flatMap((rule) => {
    const kind = rule.meta.id.replace("@secretlint/secretlint-rule-", "");
    const context = {
      report: (descriptor: { range: [number, number] }) => report(kind, descriptor.range),
      ignore: () => undefined,
      createTranslator: () => (id: string) => id,
      sharedOptions: {},
    };
    const created = rule.create(context, {});
    return created.file ? [{ kind, file: created.file }] : [];
  });
}

let reports: Finding[] = [];
const handlers = handlersFor((kind, range) => reports.push({ kind, start: range[0], end: range[1] }));

function runRules(text: string): Finding[] {
  reports = [];
  // No file path: rules that would read a file from disk (GCP's p12 check) see nothing to read.
  const source = { content: text, contentType: "text", filePath: undefined, ext: "" };
  for (const handler of handlers) {
    try {
      const result = handler.file(source);
      // Every recommended text rule is synchronous; a rule that goes async is skipped rather than awaited on the hot path.
      if (result && typeof (result as Promise<void>).then === "function") (result as Promise<void>).catch(() => undefined);
    } catch {
      // A rule that throws on odd input must not take the request down.
    }
  }
  const found = reports;
  reports = [];
  return found;
}

export function detectSecrets(text: string): Finding[] {
  return mergeFindings(scanWindows(text, (chunk) => [...runRules(chunk), ...credentialSpans(chunk)]));
}

export const SECRET_RULE_IDS = rules.map((r) => r.meta.id);
