import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import { generateJoinToken, hashJoinSecret, parseCaPin, parseJoinToken } from "./join-token.js";

const PIN = `sha256:${"ab".repeat(32)}`;

describe("join tokens", () => {
  it("carry the CA pin and a secret stored only as a hash", () => {
    const { token, secretHash } = generateJoinToken(PIN);
    const parts = parseJoinToken(token);
    expect(parts.caPin).toBe(PIN);
    expect(hashJoinSecret(parts.secret)).toBe(secretHash);
    expect(token).not.toContain(secretHash);
    expect(generateJoinToken(PIN).token).not.toBe(token);
  });

  it("rejects malformed tokens with INVALID_JOIN_TOKEN (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (input) => {
        try {
          parseJoinToken(input);
          expect(input.trim()).toMatch(/^mj1\.[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
        } catch (error) {
          expect(isMandateError(error, "INVALID_JOIN_TOKEN")).toBe(true);
        }
      }),
    );
  });

  it("validates pins", () => {
    expect(parseCaPin(PIN.toUpperCase().replace("SHA256", "sha256"))).toBe(PIN);
    expect(() => parseCaPin("sha1:abc")).toThrow("invalid CA pin");
  });
});
