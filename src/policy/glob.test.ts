import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { compileGlob, globCovers, globMatches, globProblem, matchesGlob, MAX_GLOB_LENGTH } from "./glob.js";

/** The obvious recursive matcher: exponential in the worst case, trusted for small inputs. */
function slowMatch(p: string, s: string): boolean {
  if (p === "") return s === "";
  if (p.startsWith("**")) {
    for (let i = 0; i <= s.length; i++) if (slowMatch(p.slice(2), s.slice(i))) return true;
    return false;
  }
  if (p[0] === "*") {
    for (let i = 0; i <= s.length; i++) {
      if (slowMatch(p.slice(1), s.slice(i))) return true;
      if (s[i] === "/") return false;
    }
    return false;
  }
  if (s === "") return false;
  if (p[0] === "?") return s[0] !== "/" && slowMatch(p.slice(1), s.slice(1));
  return p[0] === s[0] && slowMatch(p.slice(1), s.slice(1));
}

const alphabet = fc.constantFrom("a", "b", "/", ":", "_");
const subjectArb = fc.array(alphabet, { maxLength: 12 }).map((a) => a.join(""));
const patternArb = fc
  .array(fc.constantFrom("a", "b", "/", ":", "*", "**", "?"), { minLength: 1, maxLength: 8 })
  .map((a) => a.join(""))
  .filter((p) => globProblem(p) === undefined);

/** A random string the glob matches: each wildcard replaced by a random expansion. */
function expand(pattern: string, choices: number[]): string {
  let out = "";
  let k = 0;
  const pick = (options: string[]) => options[(choices[k++ % choices.length] ?? 0) % options.length]!;
  for (let i = 0; i < pattern.length; i++) {
    if (pattern.startsWith("**", i)) {
      out += pick(["", "a", "/", "a/b", "::", "b/"]);
      i++;
    } else if (pattern[i] === "*") out += pick(["", "a", "ab", ":", "b_a"]);
    else if (pattern[i] === "?") out += pick(["a", "b", ":", "_"]);
    else out += pattern[i];
  }
  return out;
}

describe("glob matching", () => {
  it.each([
    ["mcp:k8s/read_*", "mcp:k8s/read_logs", true],
    ["mcp:k8s/read_*", "mcp:k8s/read_", true],
    ["mcp:k8s/read_*", "mcp:k8s/write_logs", false],
    ["mcp:*/kubectl_exec", "mcp:k8s/kubectl_exec", true],
    ["mcp:*/kubectl_exec", "mcp:k8s/a/kubectl_exec", false],
    ["mcp:**", "mcp:fs/resource:file:///etc/passwd", true],
    ["mcp:fs/*", "mcp:fs/resource:file:///etc/passwd", false],
    ["mcp:fs/resource:file:///**", "mcp:fs/resource:file:///etc/passwd", true],
    ["llm:gpt-4.1*", "llm:gpt-4.1-mini", true],
    ["llm:gpt-?", "llm:gpt-4", true],
    ["llm:gpt-?", "llm:gpt-", false],
    ["**", "", true],
    ["*", "", true],
    ["a", "a", true],
    ["a", "ab", false],
  ])("%s ~ %s = %s", (pattern, subject, expected) => {
    expect(globMatches(compileGlob(pattern), subject)).toBe(expected);
  });

  it("agrees with the slow reference matcher", () => {
    fc.assert(fc.property(patternArb, subjectArb, (p, s) => globMatches(compileGlob(p), s) === slowMatch(p, s)), { numRuns: 3000 });
  });

  it("matches every expansion of itself", () => {
    fc.assert(fc.property(patternArb, fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), (p, choices) => globMatches(compileGlob(p), expand(p, choices))));
  });

  it("stays fast on patterns that make backtracking matchers explode", () => {
    const pattern = "*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
    const subject = "a".repeat(5000);
    const started = performance.now();
    expect(globMatches(compileGlob(pattern), subject)).toBe(false);
    expect(globMatches(compileGlob("**a**a**a**a**a**a**a**a**a**a**b"), "a/".repeat(3000))).toBe(false);
    expect(performance.now() - started).toBeLessThan(500);
  });

  it("rejects pathological and oversized patterns at compile time", () => {
    expect(globProblem("")).toMatch(/empty/);
    expect(globProblem("a***b")).toMatch(/\*\*\*/);
    expect(globProblem("x".repeat(MAX_GLOB_LENGTH + 1))).toMatch(/at most/);
    expect(globProblem("*a".repeat(40))).toMatch(/wildcards/);
    expect(globProblem("a\nb")).toMatch(/control/);
    expect(() => compileGlob("a***")).toThrow(/POLICY_INVALID|invalid glob/);
    expect(matchesGlob("a***", "a")).toBe(false);
  });
});

describe("globCovers", () => {
  it.each([
    ["mcp:k8s/*", "mcp:k8s/read_*", true],
    ["mcp:k8s/read_*", "mcp:k8s/*", false],
    ["mcp:**", "mcp:k8s/*", true],
    ["mcp:*", "mcp:k8s/*", false],
    ["mcp:k8s/*", "mcp:k8s/**", false],
    ["mcp:*/read_*", "mcp:k8s/read_logs", true],
    ["mcp:k8s/read_?", "mcp:k8s/read_*", false],
    ["mcp:k8s/read_*", "mcp:k8s/read_?", true],
    ["**", "anything/**", true],
    ["llm:gpt-4.1-mini", "llm:gpt-4.1-mini", true],
    ["llm:gpt-4.1-mini", "llm:gpt-4.1-*", false],
  ])("covers(%s, %s) = %s", (outer, inner, expected) => {
    expect(globCovers(outer, inner)).toBe(expected);
  });

  it("is sound: when it says outer covers inner, every string inner matches, outer matches", () => {
    fc.assert(
      fc.property(patternArb, patternArb, fc.array(fc.array(fc.nat(), { minLength: 1, maxLength: 8 }), { minLength: 1, maxLength: 10 }), (outer, inner, samples) => {
        if (!globCovers(outer, inner)) return true;
        return samples.every((choices) => globMatches(compileGlob(outer), expand(inner, choices)));
      }),
      { numRuns: 3000 },
    );
  });

  it("agrees with matching on literal inners", () => {
    fc.assert(fc.property(patternArb, subjectArb.filter((s) => s.length > 0 && !/[*?]/.test(s)), (outer, literal) => globCovers(outer, literal) === globMatches(compileGlob(outer), literal)));
  });

  it("covers itself", () => {
    fc.assert(fc.property(patternArb, (p) => globCovers(p, p)));
  });
});
