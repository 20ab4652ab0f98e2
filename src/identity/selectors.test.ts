import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import { formatSelector, normalizeSelectors, parseSelector } from "./selectors.js";

describe("workload selectors", () => {
  it("parses every supported unix selector and prints it back canonically", () => {
    expect(parseSelector("unix:uid:1000")).toEqual({ kind: "uid", value: 1000 });
    expect(parseSelector("unix:gid:0")).toEqual({ kind: "gid", value: 0 });
    expect(parseSelector("unix:user:www-data")).toEqual({ kind: "user", value: "www-data" });
    expect(parseSelector("unix:group:agents")).toEqual({ kind: "group", value: "agents" });
    expect(parseSelector("unix:path:/usr/bin/python3")).toEqual({ kind: "path", value: "/usr/bin/python3" });
    // Colons after the key belong to the value.
    expect(parseSelector("unix:path:/opt/a:b")).toEqual({ kind: "path", value: "/opt/a:b" });
    expect(formatSelector(parseSelector(`unix:sha256:${"AB".repeat(32)}`))).toBe(`unix:sha256:${"ab".repeat(32)}`);
  });

  it("rejects what could never match or is ambiguous", () => {
    for (const bad of ["", "uid:1000", "unix:uid", "k8s:ns:default", "unix:pid:1", "unix:uid:-1", "unix:uid:01", "unix:uid:99999999999", "unix:user:a b", "unix:path:relative", "unix:path:/a/../b", "unix:sha256:abc"]) {
      expect(() => parseSelector(bad), bad).toThrow(/invalid selector/);
    }
    expect(() => normalizeSelectors(["unix:uid:1", "unix:uid:2"])).toThrow(/can never match/);
    expect(normalizeSelectors(["unix:uid:1", "unix:uid:1", "unix:user:a"])).toEqual(["unix:uid:1", "unix:user:a"]);
    expect(() => normalizeSelectors(Array.from({ length: 17 }, (_, i) => `unix:path:/p${i}`))).toThrow(/at most 16/);
  });

  it("either parses or throws INVALID_ARGUMENT on any input, and round-trips what it parses (property)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 80 }), fc.string({ maxLength: 40 }).map((s) => `unix:${s}`)), (input) => {
        try {
          const parsed = parseSelector(input);
          expect(parseSelector(formatSelector(parsed))).toEqual(parsed);
        } catch (error) {
          expect(isMandateError(error, "INVALID_ARGUMENT")).toBe(true);
        }
      }),
    );
  });
});
