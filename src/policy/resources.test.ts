import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatLabelSelector, parseLabelSelector, selectorMatches } from "./labels.js";
import { parseResourceString, resourceString, resourceStrings, STATEMENT_CLASSES } from "./resources.js";
import type { AccessResource } from "./types.js";

const name = fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,15}$/);
const uri = fc.stringMatching(/^[a-z]+:\/\/[a-z0-9/._:-]{0,20}$/).filter((u) => !/(^|[/:])\.\.?([/?#]|$)/.test(u));
const resourceArb = fc.oneof(
  fc.record({ kind: fc.constant("mcp" as const), server: name, item: fc.constant("tool" as const), name }),
  fc.record({ kind: fc.constant("mcp" as const), server: name, item: fc.constantFrom("prompt" as const, "client" as const), name }),
  fc.record({ kind: fc.constant("mcp" as const), server: name, item: fc.constant("resource" as const), name: uri }),
  fc.record({ kind: fc.constant("llm" as const), model: fc.stringMatching(/^[a-z0-9][a-z0-9./:-]{0,20}$/) }),
  fc.record({
    kind: fc.constant("db" as const),
    database: name,
    dbUser: fc.constant(""),
    statements: fc.uniqueArray(fc.constantFrom(...STATEMENT_CLASSES), { minLength: 1, maxLength: 4 }),
    tables: fc.constant<string[]>([]),
    functions: fc.constant<string[]>([]),
  }),
  fc.record({ kind: fc.constant("delegate" as const), agent: name, ttlMs: fc.constant(0) }),
) as fc.Arbitrary<AccessResource>;

describe("canonical resource strings", () => {
  it.each<[AccessResource, string]>([
    [{ kind: "mcp", server: "k8s", item: "tool", name: "read_logs" }, "mcp:k8s/read_logs"],
    [{ kind: "mcp", server: "fs", item: "resource", name: "file:///etc/hosts" }, "mcp:fs/resource:file:///etc/hosts"],
    [{ kind: "mcp", server: "k8s", item: "client", name: "sampling" }, "mcp:k8s/client:sampling"],
    [{ kind: "llm", model: "gpt-4.1-mini", provider: "openai" }, "llm:gpt-4.1-mini"],
    [{ kind: "db", database: "orders", dbUser: "ro", statements: ["select", "delete"], tables: [], functions: [] }, "db:orders/select+delete"],
    [{ kind: "delegate", agent: "log-reader", ttlMs: 60_000 }, "delegate:log-reader"],
  ])("%j → %s", (resource, expected) => {
    expect(resourceString(resource)).toBe(expected);
  });

  it("round-trips: parse(resourceString(r)) is r, resourceString(parse(s)) is s", () => {
    fc.assert(
      fc.property(resourceArb, (r) => {
        const s = resourceString(r);
        expect(parseResourceString(s)).toEqual(r);
        expect(resourceString(parseResourceString(s))).toBe(s);
      }),
    );
  });

  it("splits database requests into one string per class", () => {
    expect(resourceStrings({ kind: "db", database: "o", dbUser: "u", statements: ["select", "delete", "select"], tables: [], functions: [] })).toEqual(["db:o/select", "db:o/delete"]);
  });

  it.each(["", "mcp:", "mcp:k8s", "mcp:/x", "mcp:k8s/", "mcp:k8s/bogus:x", "llm:", "db:orders", "db:orders/drop", "delegate:", "s3:bucket"])("refuses %j", (s) => {
    expect(() => parseResourceString(s)).toThrow();
  });

  it("refuses resources too long to match in bounded time", () => {
    expect(() => resourceString({ kind: "mcp", server: "fs", item: "resource", name: `file:///${"a/".repeat(3000)}` })).toThrow(/at most 4096/);
  });

  it.each(["file:///srv/../etc/passwd", "file:///srv/./x", "file:///srv/%2e%2e/etc", "file:///srv/..", "file:///srv/a%2Fb", "file:///srv\\..\\x"])("refuses the traversal-shaped resource URI %s", (name) => {
    expect(() => resourceString({ kind: "mcp", server: "fs", item: "resource", name })).toThrow(/segments/);
  });

  it("accepts ordinary URIs with dots in names", () => {
    expect(resourceString({ kind: "mcp", server: "fs", item: "resource", name: "file:///srv/.config/app.v2..json" })).toBe("mcp:fs/resource:file:///srv/.config/app.v2..json");
    expect(resourceString({ kind: "mcp", server: "web", item: "resource", name: "https://api.example/fetch?url=https%3A%2F%2Fx%2F..%2Fy" })).toMatch(/^mcp:web\/resource:/);
  });

  it("refuses names that would make the string ambiguous", () => {
    expect(() => resourceString({ kind: "mcp", server: "a/b", item: "tool", name: "x" })).toThrow(/cannot contain/);
    expect(() => resourceString({ kind: "mcp", server: "a", item: "tool", name: "x:y" })).toThrow(/cannot contain/);
  });
});

describe("label selectors", () => {
  it.each<[string, Record<string, string>, boolean]>([
    ["env=prod", { env: "prod" }, true],
    ["env==prod", { env: "prod" }, true],
    ["env=prod", { env: "dev" }, false],
    ["env!=prod", {}, true],
    ["env!=prod", { env: "prod" }, false],
    ["env in (prod,staging)", { env: "staging" }, true],
    ["env in (prod, staging)", { env: "dev" }, false],
    ["env notin (dev,test)", {}, true],
    ["env notin (dev,test)", { env: "dev" }, false],
    ["env", { env: "" }, true],
    ["!env", { env: "x" }, false],
    ["!env", {}, true],
    ["env=prod,team in (payments,checkout),!temporary", { env: "prod", team: "payments" }, true],
    ["env=prod,team in (payments,checkout),!temporary", { env: "prod", team: "payments", temporary: "1" }, false],
  ])("%s on %j = %s", (selector, labels, expected) => {
    expect(selectorMatches(parseLabelSelector(selector), labels)).toBe(expected);
  });

  it.each(["", "env in ()", "env in (a,(b))", "=x", "env=pr od", "env in (a", "a,,b", "env=*"])("refuses %j", (selector) => {
    expect(() => parseLabelSelector(selector)).toThrow(/invalid label selector/);
  });

  it("formats back to an equivalent selector", () => {
    const key = fc.stringMatching(/^[a-z][a-z0-9.-]{0,8}$/);
    const value = fc.stringMatching(/^[a-z0-9]{0,6}$/);
    const requirement = fc.oneof(
      fc.tuple(key, value).map(([k, v]) => `${k}=${v}`),
      fc.tuple(key, value).map(([k, v]) => `${k}!=${v}`),
      fc.tuple(key, fc.array(fc.stringMatching(/^[a-z0-9]{1,6}$/), { minLength: 1, maxLength: 3 })).map(([k, vs]) => `${k} in (${vs.join(",")})`),
      key.map((k) => `!${k}`),
      key,
    );
    fc.assert(
      fc.property(fc.array(requirement, { minLength: 1, maxLength: 4 }), fc.dictionary(key, value), (parts, labels) => {
        const parsed = parseLabelSelector(parts.join(","));
        const again = parseLabelSelector(formatLabelSelector(parsed));
        expect(again).toEqual(parsed);
        expect(selectorMatches(again, labels)).toBe(selectorMatches(parsed, labels));
      }),
    );
  });
});
