import { MandateError } from "../errors/index.js";
import type { Labels } from "./types.js";

/**
 * Label selectors, the Kubernetes subset that covers what roles need. Requirements are
 * separated by commas and must all hold:
 *
 *   env=prod  env==prod     the label is present with this value
 *   env!=prod               the label is absent or has another value
 *   env in (prod,staging)   present with one of these values
 *   env notin (dev,test)    absent or none of these values
 *   env                     present (any value)
 *   !env                    absent
 *
 * Keys and values are letters, digits, ".", "_", "-" and "/" (keys) — no wildcards, no
 * quoting, so there is nothing to escape and nothing to backtrack over.
 */

export type LabelRequirement =
  | { op: "eq" | "neq"; key: string; value: string }
  | { op: "in" | "notin"; key: string; values: string[] }
  | { op: "exists" | "absent"; key: string };

export type LabelSelector = LabelRequirement[];

export const MAX_SELECTOR_LENGTH = 1024;
const KEY = /^[A-Za-z0-9][A-Za-z0-9._/-]{0,126}$/;
const VALUE = /^[A-Za-z0-9._-]{0,63}$/;

function fail(selector: string, reason: string): never {
  throw new MandateError("POLICY_INVALID", `invalid label selector ${JSON.stringify(selector.slice(0, 80))}: ${reason}`);
}

/** Splits on commas that are not inside parentheses. */
function splitRequirements(selector: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < selector.length; i++) {
    const c = selector[i];
    if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (c === "," && depth === 0) {
      parts.push(selector.slice(start, i));
      start = i + 1;
    }
    if (depth < 0 || depth > 1) fail(selector, "unbalanced or nested parentheses");
  }
  if (depth !== 0) fail(selector, "unbalanced parentheses");
  parts.push(selector.slice(start));
  return parts.map((p) => p.trim());
}

function checkKey(selector: string, key: string): string {
  if (!KEY.test(key)) fail(selector, `${JSON.stringify(key)} is not a label key`);
  return key;
}

function checkValue(selector: string, value: string): string {
  if (!VALUE.test(value)) fail(selector, `${JSON.stringify(value)} is not a label value`);
  return value;
}

export function parseLabelSelector(selector: string): LabelSelector {
  if (typeof selector !== "string" || selector.trim() === "") fail(String(selector), "a selector cannot be empty");
  if (selector.length > MAX_SELECTOR_LENGTH) fail(selector, `a selector is at most ${MAX_SELECTOR_LENGTH} characters`);
  return splitRequirements(selector).map((part): LabelRequirement => {
    if (part === "") fail(selector, "empty requirement (two commas in a row?)");
    const setMatch = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part);
    if (setMatch) {
      const values = setMatch[3]!.split(",").map((v) => checkValue(selector, v.trim()));
      if (values.length === 0 || (values.length === 1 && values[0] === "")) fail(selector, `${setMatch[2]} needs at least one value`);
      return { op: setMatch[2] as "in" | "notin", key: checkKey(selector, setMatch[1]!), values };
    }
    const neq = part.indexOf("!=");
    if (neq > 0) return { op: "neq", key: checkKey(selector, part.slice(0, neq).trim()), value: checkValue(selector, part.slice(neq + 2).trim()) };
    const eq = part.indexOf("=");
    if (eq > 0) {
      const rest = part.slice(eq + 1).startsWith("=") ? part.slice(eq + 2) : part.slice(eq + 1);
      return { op: "eq", key: checkKey(selector, part.slice(0, eq).trim()), value: checkValue(selector, rest.trim()) };
    }
    if (part.startsWith("!")) return { op: "absent", key: checkKey(selector, part.slice(1).trim()) };
    return { op: "exists", key: checkKey(selector, part) };
  });
}

export function selectorMatches(selector: LabelSelector, labels: Labels | undefined): boolean {
  for (const r of selector) {
    const has = labels !== undefined && Object.prototype.hasOwnProperty.call(labels, r.key);
    const value = has ? labels![r.key] : undefined;
    switch (r.op) {
      case "eq":
        if (value !== r.value) return false;
        break;
      case "neq":
        if (value === r.value) return false;
        break;
      case "in":
        if (value === undefined || !r.values.includes(value)) return false;
        break;
      case "notin":
        if (value !== undefined && r.values.includes(value)) return false;
        break;
      case "exists":
        if (!has) return false;
        break;
      case "absent":
        if (has) return false;
        break;
    }
  }
  return true;
}

export function formatLabelSelector(selector: LabelSelector): string {
  return selector
    .map((r) => {
      switch (r.op) {
        case "eq":
          return `${r.key}=${r.value}`;
        case "neq":
          return `${r.key}!=${r.value}`;
        case "in":
        case "notin":
          return `${r.key} ${r.op} (${r.values.join(",")})`;
        case "exists":
          return r.key;
        case "absent":
          return `!${r.key}`;
      }
    })
    .join(",");
}
