import { MandateError } from "../errors/index.js";
import { globMatch } from "./glob.js";

export type AttestedJoinMethod = "kubernetes" | "github" | "oidc";
export const ATTESTED_JOIN_METHODS: readonly AttestedJoinMethod[] = ["kubernetes", "github", "oidc"];

/** One alternative of a rule: every listed claim must match its glob. Alternatives are ORed. */
export type ClaimCondition = Record<string, string>;

/**
 * Where Kubernetes puts the workload's identity in a projected service-account token:
 * `{"kubernetes.io": {"namespace": …, "serviceaccount": {"name": …}, "pod": {"name": …}, "node": {"name": …}}}`.
 * The rule's friendly keys map onto those paths.
 */
const KUBERNETES_KEYS: Record<string, string[]> = {
  namespace: ["kubernetes.io", "namespace"],
  service_account: ["kubernetes.io", "serviceaccount", "name"],
  service_account_uid: ["kubernetes.io", "serviceaccount", "uid"],
  pod: ["kubernetes.io", "pod", "name"],
  node: ["kubernetes.io", "node", "name"],
};

/** Claims in a GitHub Actions token that pin it to a repository (one must be in every condition). */
const GITHUB_ANCHORS = ["repository", "repository_id", "repository_owner", "repository_owner_id", "sub"];
const CLAIM_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}$/;
const MAX_CONDITIONS = 32;
const MAX_KEYS = 16;
const MAX_GLOB = 512;

/** Parses `--allow namespace=checkout,service_account=auditor` into a condition. */
export function parseAllow(text: string): ClaimCondition {
  const condition: ClaimCondition = {};
  for (const pair of text.split(",")) {
    if (pair === "") continue;
    const index = pair.indexOf("=");
    if (index <= 0) throw new MandateError("INVALID_ARGUMENT", `invalid --allow entry ${JSON.stringify(pair)}: use claim=glob, e.g. namespace=checkout`);
    const key = pair.slice(0, index).trim();
    if (key in condition) throw new MandateError("INVALID_ARGUMENT", `--allow ${JSON.stringify(text)} names ${key} twice; use two --allow flags for alternatives`);
    condition[key] = pair.slice(index + 1);
  }
  return condition;
}

/** Checks a rule's conditions for its method, so a rule can never admit more than its author meant. */
export function validateConditions(method: AttestedJoinMethod, conditions: ClaimCondition[]): ClaimCondition[] {
  if (conditions.length === 0) {
    throw new MandateError("INVALID_ARGUMENT", `a ${method} join rule needs at least one --allow condition; without one any token from the issuer would join`);
  }
  if (conditions.length > MAX_CONDITIONS) throw new MandateError("INVALID_ARGUMENT", `at most ${MAX_CONDITIONS} --allow conditions per rule`);
  for (const condition of conditions) {
    const keys = Object.keys(condition);
    if (keys.length === 0 || keys.length > MAX_KEYS) throw new MandateError("INVALID_ARGUMENT", `each --allow condition needs 1 to ${MAX_KEYS} claims`);
    for (const key of keys) {
      const glob = condition[key]!;
      if (typeof glob !== "string" || glob.length === 0 || glob.length > MAX_GLOB) throw new MandateError("INVALID_ARGUMENT", `the value for ${key} must be a non-empty glob of at most ${MAX_GLOB} characters`);
      if (method === "kubernetes" && !(key in KUBERNETES_KEYS)) {
        throw new MandateError("INVALID_ARGUMENT", `unknown kubernetes claim ${JSON.stringify(key)}; use ${Object.keys(KUBERNETES_KEYS).join(", ")}`);
      }
      if (method !== "kubernetes" && !CLAIM_NAME.test(key)) throw new MandateError("INVALID_ARGUMENT", `invalid claim name ${JSON.stringify(key)}`);
    }
    if (method === "kubernetes" && !("namespace" in condition)) {
      throw new MandateError("INVALID_ARGUMENT", "every kubernetes --allow condition must name a namespace (namespace=…); a service account name alone exists in every namespace");
    }
    if (method === "github" && !keys.some((k) => GITHUB_ANCHORS.includes(k) && !/^\*+$/.test(condition[k]!))) {
      throw new MandateError("INVALID_ARGUMENT", `every github --allow condition must pin ${GITHUB_ANCHORS.join(" or ")} (not just "*"); otherwise any repository on GitHub could join`);
    }
  }
  return conditions;
}

/**
 * Finds a claim by path. Claim names may themselves contain dots ("kubernetes.io"), so a
 * dotted oidc key is tried as a whole name first, then split at each dot in turn.
 */
function claimAt(claims: unknown, path: string[] | string, depth = 0): unknown {
  if (Array.isArray(path)) return path.reduce<unknown>((node, key) => (node && typeof node === "object" && !Array.isArray(node) ? (node as Record<string, unknown>)[key] : undefined), claims);
  if (!claims || typeof claims !== "object" || Array.isArray(claims) || depth > 8) return undefined;
  const record = claims as Record<string, unknown>;
  if (Object.hasOwn(record, path)) return record[path];
  for (let i = path.indexOf("."); i > 0; i = path.indexOf(".", i + 1)) {
    const head = path.slice(0, i);
    if (Object.hasOwn(record, head)) {
      const found = claimAt(record[head], path.slice(i + 1), depth + 1);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

function valueMatches(glob: string, value: unknown): boolean {
  if (typeof value === "string") return globMatch(glob, value);
  if (typeof value === "number" || typeof value === "boolean") return globMatch(glob, String(value));
  // A list claim (GitLab groups, an audience array…) matches when any element does.
  if (Array.isArray(value)) return value.slice(0, 256).some((v) => typeof v !== "object" && valueMatches(glob, v));
  return false;
}

/** The claim values a rule looks at, for the audit record (what was presented, whether it matched or not). */
export function claimsOfInterest(method: AttestedJoinMethod, conditions: ClaimCondition[], claims: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of new Set(conditions.flatMap((c) => Object.keys(c)))) {
    const value = claimAt(claims, method === "kubernetes" ? KUBERNETES_KEYS[key]! : key);
    if (value !== undefined && typeof value !== "object") out[key] = value;
  }
  return out;
}

/** True when the claims satisfy at least one condition completely. */
export function claimsAllowed(method: AttestedJoinMethod, conditions: ClaimCondition[], claims: Record<string, unknown>): boolean {
  return conditions.some((condition) =>
    Object.entries(condition).every(([key, glob]) => valueMatches(glob, claimAt(claims, method === "kubernetes" ? KUBERNETES_KEYS[key]! : key))),
  );
}
