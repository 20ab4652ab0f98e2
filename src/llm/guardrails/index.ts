import { MandateError } from "../../errors/index.js";
import type { GuardAction, GuardrailsConfig, PiiKind } from "../config.js";
import type { PromptText } from "../types.js";
import { type Finding, redactFindings } from "./finding.js";
import { callClassifier } from "./hook.js";
import { detectInjection } from "./injection.js";
import { ALL_PII_KINDS, detectPii } from "./pii.js";
import { detectSecrets } from "./secrets.js";

export { detectInjection } from "./injection.js";
export { detectPii, luhnValid, ibanValid } from "./pii.js";
export { detectSecrets } from "./secrets.js";
export { redactFindings, type Finding } from "./finding.js";

export type Detector = "secrets" | "pii" | "injection" | "hook";
export type Direction = "input" | "output";

/** What the audit event records: which detector, what it did, and counts by kind and role — never the text. */
export interface Verdict {
  detector: Detector;
  direction: Direction;
  action: Exclude<GuardAction, "off">;
  findings: { kind: string; role: string; count: number }[];
  error?: string;
}

export interface GuardPolicy {
  secrets: { input: GuardAction; output: GuardAction };
  pii: { input: GuardAction; output: GuardAction; kinds: PiiKind[] };
  injection: { input: GuardAction; output: GuardAction; roles: string[] };
  hook: { input: GuardAction; output: GuardAction };
}

export interface GuardResult {
  verdicts: Verdict[];
  /** the verdict that stopped the request, if one did */
  blocked: Verdict | undefined;
  /** texts were rewritten (redacted) in place */
  changed: boolean;
}

export interface GuardMeta {
  model: string;
  agent: string | undefined;
  team: string | undefined;
}

const SEVERITY: Record<GuardAction, number> = { off: 0, flag: 1, redact: 2, block: 3 };

/**
 * Input and output screening. Each detector's action (off / flag / redact / block) is
 * set per direction, and overridden for callers holding a role or calling a model.
 * `block` stops the request before anything reaches the provider (input) or withholds
 * the answer (output); `redact` replaces what was found with `[REDACTED:<kind>]`;
 * `flag` only records the verdict.
 */
export class Guardrails {
  private readonly cache = new Map<string, GuardPolicy>();

  constructor(private readonly config: GuardrailsConfig) {}

  policy(roles: string[], model: string): GuardPolicy {
    const key = `${model}\u0000${roles.join("\u0000")}`;
    const cached = this.cache.get(key);
    if (cached) return cached;
    const c = this.config;
    const policy: GuardPolicy = {
      secrets: { input: c.secrets.input ?? "off", output: c.secrets.output ?? "off" },
      pii: { input: c.pii.input ?? "off", output: c.pii.output ?? "off", kinds: c.pii.kinds ?? ALL_PII_KINDS },
      injection: { input: c.injection.input ?? "off", output: c.injection.output ?? "off", roles: c.injection.roles ?? ["tool"] },
      hook: { input: c.hook ? (c.hook.input ?? "off") : "off", output: c.hook ? (c.hook.output ?? "off") : "off" },
    };
    for (const rule of c.rules) {
      if (rule.role !== undefined && !roles.includes(rule.role)) continue;
      if (rule.model !== undefined && rule.model !== model) continue;
      for (const detector of ["secrets", "pii", "injection", "hook"] as const) {
        const o = rule[detector];
        if (!o) continue;
        if (o.input) policy[detector].input = o.input;
        if (o.output) policy[detector].output = o.output;
      }
    }
    if (this.cache.size < 10_000) this.cache.set(key, policy);
    return policy;
  }

  /** Whether any output detector rewrites or withholds (and so a stream must be screened before forwarding). */
  static screensOutput(policy: GuardPolicy): boolean {
    return [policy.secrets.output, policy.pii.output, policy.injection.output].some((a) => a === "redact" || a === "block");
  }

  static active(policy: GuardPolicy, direction: Direction): boolean {
    return (["secrets", "pii", "injection", "hook"] as const).some((d) => policy[d][direction] !== "off");
  }

  /** The synchronous detectors for one direction (the hook is separate: it is a network call). */
  detectors(policy: GuardPolicy, direction: Direction): { detector: Detector; action: GuardAction; roles: string[] | undefined; detect: (text: string) => Finding[] }[] {
    const out: { detector: Detector; action: GuardAction; roles: string[] | undefined; detect: (text: string) => Finding[] }[] = [];
    if (policy.secrets[direction] !== "off") out.push({ detector: "secrets", action: policy.secrets[direction], roles: undefined, detect: detectSecrets });
    if (policy.pii[direction] !== "off") out.push({ detector: "pii", action: policy.pii[direction], roles: undefined, detect: (t) => detectPii(t, policy.pii.kinds) });
    if (policy.injection[direction] !== "off") out.push({ detector: "injection", action: policy.injection[direction], roles: direction === "input" ? policy.injection.roles : undefined, detect: detectInjection });
    return out;
  }

  async screen(texts: PromptText[], policy: GuardPolicy, direction: Direction, meta: GuardMeta): Promise<GuardResult> {
    const verdicts: Verdict[] = [];
    let blocked: Verdict | undefined;
    let changed = false;
    for (const { detector, action, roles, detect } of this.detectors(policy, direction)) {
      const counts = new Map<string, number>();
      for (const t of texts) {
        if (roles && !roles.includes(t.role)) continue;
        const findings = detect(t.text);
        if (findings.length === 0) continue;
        for (const f of findings) counts.set(`${f.kind}\u0000${t.role}`, (counts.get(`${f.kind}\u0000${t.role}`) ?? 0) + 1);
        if (action === "redact") {
          t.replace(redactFindings(t.text, findings));
          t.text = redactFindings(t.text, findings);
          changed = true;
        }
      }
      if (counts.size === 0) continue;
      const verdict: Verdict = { detector, direction, action: action as Verdict["action"], findings: [...counts].map(([k, count]) => ({ kind: k.split("\u0000")[0]!, role: k.split("\u0000")[1]!, count })) };
      verdicts.push(verdict);
      if (action === "block" && (!blocked || SEVERITY[verdict.action] >= SEVERITY[blocked.action])) blocked = blocked ?? verdict;
    }
    const hookAction = policy.hook[direction];
    if (hookAction !== "off" && this.config.hook && !blocked) {
      const verdict = await this.runHook(texts, hookAction, direction, meta);
      if (verdict) {
        verdicts.push(verdict.verdict);
        if (verdict.verdict.action === "block") blocked = verdict.verdict;
        changed ||= verdict.changed;
      }
    }
    return { verdicts, blocked, changed };
  }

  private async runHook(texts: PromptText[], action: GuardAction, direction: Direction, meta: GuardMeta): Promise<{ verdict: Verdict; changed: boolean } | undefined> {
    const hook = this.config.hook!;
    try {
      const answer = await callClassifier(hook.url, { direction, model: meta.model, agent: meta.agent, team: meta.team, texts: texts.map((t) => ({ role: t.role, text: t.text })) }, hook.timeoutMs);
      if (!answer.flagged) return undefined;
      const findings = (answer.categories.length ? answer.categories : ["flagged"]).map((kind) => ({ kind, role: "*", count: 1 }));
      if (action === "redact" && answer.redacted) {
        answer.redacted.forEach((text, i) => {
          texts[i]!.replace(text);
          texts[i]!.text = text;
        });
        return { verdict: { detector: "hook", direction, action: "redact", findings }, changed: true };
      }
      // A classifier that flags without giving redactions cannot be redacted from: it is recorded.
      return { verdict: { detector: "hook", direction, action: action === "redact" ? "flag" : (action as Verdict["action"]), findings }, changed: false };
    } catch (error) {
      const message = (error as Error).message;
      if (hook.failOpen || action === "flag") return { verdict: { detector: "hook", direction, action: "flag", findings: [], error: message }, changed: false };
      return { verdict: { detector: "hook", direction, action: "block", findings: [], error: message }, changed: false };
    }
  }
}

/** The refusal for a blocked verdict: says which detector, what it found where, and what to do. */
export function blockedError(verdict: Verdict): MandateError {
  const where = verdict.findings.map((f) => `${f.kind}${f.role !== "*" ? ` in a ${f.role} message` : ""}`).join(", ");
  const what = verdict.direction === "input" ? "the request was not sent to the model" : "the model's answer was withheld";
  const reason =
    verdict.error !== undefined
      ? `the ${verdict.detector} guardrail could not check the ${verdict.direction} (${verdict.error})`
      : `the ${verdict.detector} guardrail found ${where || "a match"} in the ${verdict.direction}`;
  return new MandateError("GUARDRAIL_BLOCKED", `guardrail: ${reason}; ${what}. Remove it, or ask an operator to change the guardrail for your role`, { details: { guardrail: { detector: verdict.detector, direction: verdict.direction, findings: verdict.findings } } });
}
