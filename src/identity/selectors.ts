import { MandateError } from "../errors/index.js";

/**
 * Workload selectors: which local processes the daemon may hand an agent's identity to,
 * in SPIRE's `type:key:value` notation. Every selector registered on an agent must match
 * the calling process (they are ANDed); an agent with none is served only to processes of
 * the daemon's own user (see docs/daemon.md).
 */
export type Selector =
  | { kind: "uid"; value: number }
  | { kind: "gid"; value: number }
  | { kind: "user"; value: string }
  | { kind: "group"; value: string }
  | { kind: "path"; value: string }
  | { kind: "sha256"; value: string };

export const MAX_SELECTORS = 16;
const MAX_SELECTOR_LENGTH = 4096;
const ID = /^(0|[1-9][0-9]{0,9})$/;
// POSIX portable user/group names, plus the '$' Samba machine accounts end with.
const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$/;
const SHA256 = /^[0-9a-f]{64}$/;

function invalid(input: string, reason: string): MandateError {
  return new MandateError("INVALID_ARGUMENT", `invalid selector ${JSON.stringify(input.slice(0, 120))}: ${reason}`);
}

export function parseSelector(input: string): Selector {
  if (typeof input !== "string" || input.length === 0 || input.length > MAX_SELECTOR_LENGTH) throw invalid(String(input), "empty or too long");
  const first = input.indexOf(":");
  const second = first < 0 ? -1 : input.indexOf(":", first + 1);
  if (first < 0 || second < 0) throw invalid(input, "expected unix:<key>:<value>, e.g. unix:uid:1000");
  const type = input.slice(0, first);
  const key = input.slice(first + 1, second);
  const value = input.slice(second + 1);
  if (type !== "unix") throw invalid(input, `unknown selector type ${JSON.stringify(type)}; only unix selectors exist`);
  switch (key) {
    case "uid":
    case "gid": {
      if (!ID.test(value) || Number(value) > 0xffffffff) throw invalid(input, `${key} must be a decimal number`);
      return { kind: key, value: Number(value) };
    }
    case "user":
    case "group":
      if (!NAME.test(value)) throw invalid(input, `${key} must be a user or group name`);
      return { kind: key, value };
    case "path":
      if (!value.startsWith("/") || value.includes("\0") || value.split("/").some((s) => s === "." || s === "..")) {
        throw invalid(input, "path must be an absolute path without . or .. segments");
      }
      return { kind: "path", value };
    case "sha256": {
      const hex = value.toLowerCase();
      if (!SHA256.test(hex)) throw invalid(input, "sha256 must be 64 hex digits (sha256sum of the executable)");
      return { kind: "sha256", value: hex };
    }
    default:
      throw invalid(input, `unknown key ${JSON.stringify(key)}; use uid, gid, user, group, path or sha256`);
  }
}

export function formatSelector(selector: Selector): string {
  return `unix:${selector.kind}:${selector.value}`;
}

/** Validates and canonicalizes an agent's selector set (duplicates removed, order kept). */
export function normalizeSelectors(inputs: readonly string[]): string[] {
  if (inputs.length > MAX_SELECTORS) throw new MandateError("INVALID_ARGUMENT", `at most ${MAX_SELECTORS} selectors per agent`);
  const out = [...new Set(inputs.map((s) => formatSelector(parseSelector(s))))];
  const uids = out.filter((s) => s.startsWith("unix:uid:"));
  const gids = out.filter((s) => s.startsWith("unix:gid:"));
  // A process has one uid and one primary gid: two different ones can never both match.
  if (uids.length > 1 || gids.length > 1) throw new MandateError("INVALID_ARGUMENT", "selectors are ANDed: two different unix:uid (or unix:gid) selectors can never match one process");
  return out;
}
