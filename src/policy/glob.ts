import { MandateError } from "../errors/index.js";

/**
 * Globs over canonical resource strings (`mcp:k8s/read_*`) and over the names in role
 * rules (`read_*`). Safe by construction: a glob is compiled into a token array and
 * matched by simulating its NFA one character at a time, so a match costs at most
 * O(input length × pattern length) whatever the pattern; no regular expression is ever
 * built from user input, and patterns that are too long or too wild are refused when
 * they are applied, not when a request arrives.
 *
 *   *    any run of characters other than "/" (possibly empty)
 *   **   any run of characters, "/" included (possibly empty)
 *   ?    exactly one character other than "/"
 *   anything else matches itself; there is no escape and no character class.
 */

export const MAX_GLOB_LENGTH = 512;
export const MAX_GLOB_WILDCARDS = 32;

const LIT = 0;
const STAR = 1;
const GLOBSTAR = 2;
const QMARK = 3;
const SLASH = 47;

export interface Glob {
  readonly source: string;
  /** token kinds (LIT, STAR, GLOBSTAR, QMARK) */
  readonly kinds: Uint8Array;
  /** the character code of LIT tokens */
  readonly chars: Uint16Array;
  /** fast paths decided at compile time */
  readonly exact: string | undefined;
  /** `prefix**`: anything starting with prefix */
  readonly prefix: string | undefined;
  /** `prefix*`: prefix, then anything without "/" */
  readonly segmentPrefix: string | undefined;
}

/** Why `pattern` is not a usable glob, or undefined when it is. */
export function globProblem(pattern: string): string | undefined {
  if (typeof pattern !== "string" || pattern.length === 0) return "a glob cannot be empty";
  if (pattern.length > MAX_GLOB_LENGTH) return `a glob is at most ${MAX_GLOB_LENGTH} characters (this one has ${pattern.length})`;
  // eslint-disable-next-line no-control-regex -- a fixed expression, not built from input
  if (/[\u0000-\u001f\u007f]/.test(pattern)) return "a glob cannot contain control characters";
  if (pattern.includes("***")) return `"***" is not a glob operator; use "**" to cross "/" or "*" within a segment`;
  let wildcards = 0;
  for (let i = 0; i < pattern.length; i++) if (pattern.charCodeAt(i) === 42 || pattern.charCodeAt(i) === 63) wildcards++;
  if (wildcards > MAX_GLOB_WILDCARDS) return `a glob has at most ${MAX_GLOB_WILDCARDS} wildcards (this one has ${wildcards})`;
  return undefined;
}

export function compileGlob(pattern: string): Glob {
  const problem = globProblem(pattern);
  if (problem) throw new MandateError("POLICY_INVALID", `invalid glob ${JSON.stringify(pattern.slice(0, 80))}: ${problem}`);
  const kinds: number[] = [];
  const chars: number[] = [];
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charCodeAt(i);
    if (c === 42) {
      if (pattern.charCodeAt(i + 1) === 42) {
        kinds.push(GLOBSTAR);
        i++;
      } else kinds.push(STAR);
      chars.push(0);
    } else if (c === 63) {
      kinds.push(QMARK);
      chars.push(0);
    } else {
      kinds.push(LIT);
      chars.push(c);
    }
  }
  const wild = kinds.findIndex((k) => k !== LIT);
  const exact = wild === -1 ? pattern : undefined;
  const trailing = wild !== -1 && wild === kinds.length - 1 ? kinds[wild] : undefined;
  const prefix = trailing === GLOBSTAR ? pattern.slice(0, -2) : undefined;
  const segmentPrefix = trailing === STAR ? pattern.slice(0, -1) : undefined;
  return { source: pattern, kinds: Uint8Array.from(kinds), chars: Uint16Array.from(chars), exact, prefix, segmentPrefix };
}

/** Reused state vectors: matching is synchronous, so one pair per process is enough. */
let current = new Uint8Array(64);
let next = new Uint8Array(64);

function ensureCapacity(n: number): void {
  if (current.length < n) {
    current = new Uint8Array(n * 2);
    next = new Uint8Array(n * 2);
  }
}

/** Adds state i and, through zero-width wildcards, the states after it. */
function addState(set: Uint8Array, kinds: Uint8Array, i: number): void {
  while (set[i] === 0) {
    set[i] = 1;
    const k = kinds[i];
    if (k !== STAR && k !== GLOBSTAR) return;
    i++;
  }
}

export function globMatches(glob: Glob, subject: string): boolean {
  if (glob.exact !== undefined) return glob.exact === subject;
  if (glob.prefix !== undefined) return subject.startsWith(glob.prefix);
  if (glob.segmentPrefix !== undefined) return subject.startsWith(glob.segmentPrefix) && subject.indexOf("/", glob.segmentPrefix.length) === -1;
  const { kinds, chars } = glob;
  const m = kinds.length;
  ensureCapacity(m + 1);
  let cur = current;
  let nxt = next;
  cur.fill(0, 0, m + 1);
  addState(cur, kinds, 0);
  for (let p = 0; p < subject.length; p++) {
    const c = subject.charCodeAt(p);
    nxt.fill(0, 0, m + 1);
    let any = false;
    for (let i = 0; i < m; i++) {
      if (cur[i] === 0) continue;
      const k = kinds[i];
      if (k === LIT) {
        if (chars[i] === c) {
          addState(nxt, kinds, i + 1);
          any = true;
        }
      } else if (k === GLOBSTAR) {
        addState(nxt, kinds, i);
        any = true;
      } else if (c !== SLASH) {
        addState(nxt, kinds, k === STAR ? i : i + 1);
        any = true;
      }
    }
    if (!any) return false;
    const t = cur;
    cur = nxt;
    nxt = t;
  }
  return cur[m] === 1;
}

/**
 * True only when every string `inner` matches is also matched by `outer` (language
 * inclusion), answered conservatively: `inner`'s wildcards are treated as symbols that
 * only an at-least-as-wide wildcard of `outer` may consume. When this says true the
 * inclusion holds; it may say false for some exotic pairs where inclusion holds too, which
 * only means an attenuation is refused, never that one widens.
 */
export function globCovers(outer: Glob | string, inner: Glob | string): boolean {
  const o = typeof outer === "string" ? compileGlob(outer) : outer;
  const n = typeof inner === "string" ? compileGlob(inner) : inner;
  const ok = o.kinds;
  const m = ok.length;
  let cur = new Uint8Array(m + 1);
  let nxt = new Uint8Array(m + 1);
  addState(cur, ok, 0);
  for (let p = 0; p < n.kinds.length; p++) {
    const ik = n.kinds[p]!;
    const ic = n.chars[p]!;
    nxt.fill(0);
    let any = false;
    for (let i = 0; i < m; i++) {
      if (cur[i] === 0) continue;
      const k = ok[i];
      let to = -1;
      if (k === GLOBSTAR) to = i;
      else if (k === STAR) {
        // a "*" absorbs anything that never produces "/"
        if ((ik === LIT && ic !== SLASH) || ik === STAR || ik === QMARK) to = i;
      } else if (k === QMARK) {
        if ((ik === LIT && ic !== SLASH) || ik === QMARK) to = i + 1;
      } else if (ik === LIT && o.chars[i] === ic) to = i + 1;
      if (to >= 0) {
        addState(nxt, ok, to);
        any = true;
      }
    }
    if (!any) return false;
    const t = cur;
    cur = nxt;
    nxt = t;
  }
  return cur[m] === 1;
}

/** Compiled globs are cached by source; role snapshots and delegation scopes reuse them. */
const cache = new Map<string, Glob>();
const CACHE_LIMIT = 50_000;

export function cachedGlob(pattern: string): Glob {
  let glob = cache.get(pattern);
  if (!glob) {
    glob = compileGlob(pattern);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(pattern, glob);
  }
  return glob;
}

/** Matches against a pattern string; an invalid pattern matches nothing (fail closed). */
export function matchesGlob(pattern: string, subject: string): boolean {
  let glob: Glob;
  try {
    glob = cachedGlob(pattern);
  } catch {
    return false;
  }
  return globMatches(glob, subject);
}
