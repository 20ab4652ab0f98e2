import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import { agentNameOf, agentSpiffeId, parseSpiffeId, validateTrustDomain } from "./spiffe-id.js";

describe("parseSpiffeId", () => {
  it.each([
    ["http://example.org/a", "scheme"],
    ["SPIFFE://example.org/a", "lowercase"],
    ["spiffe:///a", "trust domain is empty"],
    ["spiffe://", "trust domain is empty"],
    ["spiffe://user@example.org/a", "userinfo"],
    ["spiffe://example.org:8080/a", "port"],
    ["spiffe://example.org/a?x=1", "query"],
    ["spiffe://example.org/a#frag", "fragment"],
    ["spiffe://Example.org/a", "trust domain"],
    ["spiffe://exa mple.org/a", "trust domain"],
    ["spiffe://example.org/a%20b", "path contains"],
    ["spiffe://example.org//a", "empty segment"],
    ["spiffe://example.org/a/", "empty segment"],
    ["spiffe://example.org/", "empty segment"],
    ["spiffe://example.org/./a", "'.'"],
    ["spiffe://example.org/a/..", "'.'"],
    ["spiffe://example.org/a*b", "path contains"],
  ])("rejects %s", (input, reason) => {
    expect(() => parseSpiffeId(input)).toThrow(reason);
    try {
      parseSpiffeId(input);
    } catch (error) {
      expect(isMandateError(error, "INVALID_SPIFFE_ID")).toBe(true);
    }
  });

  it("accepts valid IDs and keeps them canonical", () => {
    expect(parseSpiffeId("spiffe://mandate.local/agent/deploy-auditor")).toEqual({
      trustDomain: "mandate.local",
      path: "/agent/deploy-auditor",
      uri: "spiffe://mandate.local/agent/deploy-auditor",
    });
    expect(parseSpiffeId("spiffe://td_1.example-x").path).toBe("");
    expect(parseSpiffeId("spiffe://a/A.b-c_d/..x").path).toBe("/A.b-c_d/..x");
  });

  it("accepts an ID of exactly 2048 bytes and rejects 2049", () => {
    const prefix = "spiffe://example.org/";
    const ok = prefix + "a".repeat(2048 - prefix.length);
    expect(parseSpiffeId(ok).uri.length).toBe(2048);
    expect(() => parseSpiffeId(`${ok}a`)).toThrow("2048");
  });

  it("rejects trust domains over 255 bytes", () => {
    expect(() => validateTrustDomain("a".repeat(256))).toThrow("255");
    expect(validateTrustDomain("a".repeat(255))).toHaveLength(255);
  });

  it("round-trips every ID built from valid parts (property)", () => {
    const tdChar = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyz0123456789.-_".split(""));
    const segChar = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_".split(""));
    const segment = fc.string({ unit: segChar, minLength: 1, maxLength: 12 }).filter((s) => s !== "." && s !== "..");
    fc.assert(
      fc.property(fc.string({ unit: tdChar, minLength: 1, maxLength: 40 }), fc.array(segment, { maxLength: 6 }), (td, segs) => {
        const uri = `spiffe://${td}${segs.map((s) => `/${s}`).join("")}`;
        const id = parseSpiffeId(uri);
        expect(id.uri).toBe(uri);
        expect(id.trustDomain).toBe(td);
      }),
    );
  });

  it("never throws anything but a MandateError, whatever the input (property)", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string().map((s) => `spiffe://${s}`), fc.string({ unit: "binary" }).map((s) => `spiffe://a/${s}`)), (input) => {
        try {
          const id = parseSpiffeId(input);
          // Whatever is accepted must itself satisfy the character rules.
          expect(id.trustDomain).toMatch(/^[a-z0-9._-]+$/);
          expect(id.path === "" || /^(\/[a-zA-Z0-9._-]+)+$/.test(id.path)).toBe(true);
        } catch (error) {
          expect(isMandateError(error, "INVALID_SPIFFE_ID")).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe("agent IDs", () => {
  it("builds and reads back agent IDs", () => {
    const id = agentSpiffeId("mandate.local", "deploy-auditor");
    expect(id.uri).toBe("spiffe://mandate.local/agent/deploy-auditor");
    expect(agentNameOf(id)).toBe("deploy-auditor");
    expect(() => agentSpiffeId("mandate.local", "bad/name")).toThrow("invalid agent name");
  });
});
