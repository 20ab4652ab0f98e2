import { describe, expect, it } from "vitest";
import { MandateError } from "../errors/index.js";
import { compileRoleSource } from "./compile.js";
import { MAX_APPLY_BYTES, parseRoleDocuments } from "./role-document.js";

function rejection(text: string): MandateError {
  try {
    parseRoleDocuments(text, "role.yaml");
  } catch (error) {
    expect(error).toBeInstanceOf(MandateError);
    expect((error as MandateError).code).toBe("POLICY_INVALID");
    return error as MandateError;
  }
  throw new Error("expected the document to be rejected");
}

const good = `kind: role
name: reader
allow:
  mcp:
    servers: [k8s]
    tools: ["read_*"]
`;

describe("role documents", () => {
  it("parses a role and remembers each rule's line", () => {
    const [role] = parseRoleDocuments(good);
    expect(role!.document.name).toBe("reader");
    expect(role!.lines["allow.mcp[0]"]).toBe(5);
    expect(role!.source).toBe(good);
  });

  it("parses several documents and keeps lines relative to each", () => {
    const roles = parseRoleDocuments(`${good}---\n${good.replace("reader", "writer")}`);
    expect(roles.map((r) => r.document.name)).toEqual(["reader", "writer"]);
    expect(compileRoleSource(roles[1]!.source).rules.allow.mcp[0]!.line).toBe(5);
  });

  it.each<[string, string, RegExp]>([
    ["unknown top-level field", `${good}extra: 1\n`, /role\.yaml:7: extra: unknown field "extra"/],
    ["unknown rule field", good.replace(`tools: ["read_*"]`, `tools: ["read_*"]\n    toolz: [x]`), /role\.yaml:7: allow\.mcp\[0\]\.toolz: unknown field/],
    ["unknown resource kind", good.replace("  mcp:", "  s3:"), /unknown field "s3"/],
    ["invalid glob", good.replace(`"read_*"`, `"read_***"`), /role\.yaml:6: allow\.mcp\[0\]\.tools\[0\]: invalid glob/],
    ["empty glob", good.replace(`"read_*"`, `""`), /invalid glob/],
    ["bad YAML", "kind: role\nname: [unclosed\n", /role\.yaml:\d+: invalid YAML/],
    ["duplicate key", "kind: role\nname: a\nname: b\n", /invalid YAML/],
    ["wrong kind", good.replace("kind: role", "kind: rolebinding"), /kind/],
    ["bad name", good.replace("name: reader", "name: Reader!"), /role name/],
    ["bad statement class", "kind: role\nname: x\nallow:\n  db:\n    statements: [drop]\n", /role\.yaml:5: allow\.db\[0\]\.statements\[0\]/],
    ["bad selector", "kind: role\nname: x\nallow:\n  mcp:\n    labels: 'env in (a'\n", /label selector/],
    ["bad duration", "kind: role\nname: x\nallow:\n  delegate:\n    agents: [a]\n    max_ttl: forever\n", /max_ttl/],
    ["max_ttl outside allow", "kind: role\nname: x\ndeny:\n  delegate:\n    agents: [a]\n    max_ttl: 1h\n", /no meaning under deny/],
    ["Cedar that does not parse", "kind: role\nname: x\nallow:\n  mcp:\n    tools: [a]\n    conditions: 'context.args.x =='\n", /role\.yaml:6: allow\.mcp\[0\]\.conditions: Cedar: /],
    ["Cedar that smuggles a second policy", "kind: role\nname: x\nallow:\n  mcp:\n    tools: [a]\n    conditions: 'true }; permit(principal, action, resource) when { true'\n", /cannot close its `when` clause/],
    ["Cedar that is not an expression", "kind: role\nname: x\nallow:\n  mcp:\n    conditions: 'permit(principal, action, resource);'\n", /Cedar/],
    ["an alias", "kind: role\nname: x\nallow:\n  mcp: &a\n    tools: [a]\n  llm: *a\n", /alias/i],
    ["a role twice in one apply", `${good}---\n${good}`, /defined twice/],
    ["nothing", "\n# just a comment\n", /no role documents/],
    ["a scalar", "hello", /document/],
  ])("rejects %s", (_name, text, pattern) => {
    expect(rejection(text).message).toMatch(pattern);
  });

  it("is all or nothing: one bad document rejects the apply", () => {
    expect(rejection(`${good}---\n${good.replace("reader", "second").replace("read_*", "a***")}`).message).toMatch(/role\.yaml:13/);
  });

  it("rejects oversized input, huge documents and too many rules", () => {
    expect(rejection("x".repeat(MAX_APPLY_BYTES + 1)).message).toMatch(/at most/);
    const manyRules = `kind: role\nname: big\nallow:\n  mcp:\n${Array.from({ length: 300 }, (_, i) => `    - tools: [t${i}]\n`).join("")}`;
    expect(rejection(manyRules).message).toMatch(/at most/);
    const hugeDoc = `kind: role\nname: huge\ndescription: ${"a".repeat(70_000)}\n`;
    expect(rejection(hugeDoc).message).toMatch(/at most/);
  });

  it("survives deep nesting without blowing the stack", () => {
    const started = performance.now();
    expect(rejection(`kind: role\nname: deep\nallow: ${"[".repeat(20_000)}${"]".repeat(20_000)}\n`).message).toMatch(/role\.yaml/);
    expect(rejection(`kind: role\nname: deep\nallow:\n${Array.from({ length: 2000 }, (_, i) => `${" ".repeat(i + 1)}a${i}:\n`).join("")}`).message).toMatch(/role\.yaml/);
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it("survives many documents", () => {
    expect(rejection(Array.from({ length: 600 }, (_, i) => good.replace("reader", `r${i}`)).join("---\n")).message).toMatch(/at most 500 documents/);
  });
});
