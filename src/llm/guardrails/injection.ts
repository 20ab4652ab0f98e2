import { type Finding, scanWindows } from "./finding.js";

/**
 * Heuristics for instructions planted in text the model will read as data — tool
 * results, retrieved documents, web pages: attempts to override the instructions, to
 * fake a system or role boundary, to make the agent call tools or send data somewhere,
 * and hidden text (Unicode tag characters, runs of zero-width characters). Each rule
 * has a weight; text scoring at or above the threshold is an injection. Heuristics are
 * a tripwire, not a proof: `flag` is the default action, and the corpus test reports
 * their precision and recall.
 */
interface Rule {
  kind: string;
  pattern: RegExp;
  weight: number;
}

const RULES: Rule[] = [
  { kind: "override", weight: 3, pattern: /\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}?\b(?:previous|prior|above|earlier|all|any|your|the|system)\b[^.\n]{0,30}?\b(?:instructions?|prompts?|rules|directions|guidelines|context)\b/gi },
  { kind: "override", weight: 2, pattern: /\b(?:new|updated|real|actual|true)\s+(?:instructions?|system\s+prompt|orders)\s*[:\-]/gi },
  { kind: "role-boundary", weight: 3, pattern: /<\|im_start\|>|<\|im_end\|>|<\|system\|>|<\/?system>|\[\/?INST\]|<<SYS>>|^\s*#{1,3}\s*(?:system|assistant)\s*(?:prompt|message)?\s*:/gim },
  { kind: "role-boundary", weight: 2, pattern: /^\s*(?:system|assistant)\s*:\s*\S/gim },
  { kind: "persona", weight: 2, pattern: /\byou\s+are\s+now\b|\bfrom\s+now\s+on\b[^.\n]{0,30}\byou\b|\bact\s+as\s+(?:an?\s+)?(?:unrestricted|jailbroken|evil|DAN)\b|\bdeveloper\s+mode\b|\bdo\s+anything\s+now\b/gi },
  { kind: "prompt-leak", weight: 2, pattern: /\b(?:reveal|print|show|repeat|output|leak)\b[^.\n]{0,30}?\b(?:system\s+prompt|hidden\s+instructions|your\s+instructions|initial\s+prompt)\b/gi },
  { kind: "tool-coercion", weight: 2, pattern: /\b(?:call|invoke|run|execute|use)\s+(?:the\s+)?(?:tool|function|command)\b[^.\n]{0,40}|\bexecute\s+(?:the\s+following|this)\s+(?:command|code|script)\b|\bkubectl\s+(?:exec|delete)\b|\brm\s+-rf\b/gi },
  { kind: "exfiltration", weight: 3, pattern: /\b(?:send|post|upload|forward|exfiltrate|leak|email)\b[^.\n]{0,60}?\b(?:secrets?|credentials?|tokens?|passwords?|api\s+keys?|env(?:ironment)?\s+variables|private\s+keys?)\b/gi },
  { kind: "exfiltration", weight: 2, pattern: /!\[[^\]\n]{0,40}\]\(https?:\/\/[^)\s]{1,200}[?&][^)\s]{0,200}=/gi },
  { kind: "urgency", weight: 1, pattern: /\b(?:IMPORTANT|URGENT|ATTENTION|WARNING)\s*[:!]\s*(?:AI|assistant|agent|model|LLM)\b/g },
  { kind: "hidden-text", weight: 3, pattern: /[\u{E0000}-\u{E007F}]{4,}/gu },
  { kind: "hidden-text", weight: 2, pattern: /[\u200B-\u200D\u2060\uFEFF]{6,}/g },
];

export const INJECTION_THRESHOLD = 3;

export function detectInjection(text: string): Finding[] {
  return scanWindows(text, (chunk) => {
    const found: (Finding & { weight: number })[] = [];
    for (const rule of RULES) for (const m of chunk.matchAll(rule.pattern)) found.push({ kind: rule.kind, start: m.index, end: m.index + m[0].length, weight: rule.weight });
    const score = found.reduce((s, f) => s + f.weight, 0);
    return score >= INJECTION_THRESHOLD ? found.map(({ kind, start, end }) => ({ kind, start, end })) : [];
  });
}
