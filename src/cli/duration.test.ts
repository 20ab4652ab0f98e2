import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import { formatDuration, parseDuration } from "./duration.js";

describe("durations", () => {
  it("parses the documented forms", () => {
    expect(parseDuration("90s")).toBe(90_000);
    expect(parseDuration("30m")).toBe(1_800_000);
    expect(parseDuration("1h30m")).toBe(5_400_000);
    expect(parseDuration("7d")).toBe(604_800_000);
  });
  it("rejects everything else with INVALID_ARGUMENT (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 12 }), (input) => {
        try {
          expect(parseDuration(input)).toBeGreaterThan(0);
        } catch (error) {
          expect(isMandateError(error, "INVALID_ARGUMENT")).toBe(true);
        }
      }),
    );
    expect(() => parseDuration("10")).toThrow("invalid duration");
    expect(() => parseDuration("0s")).toThrow("invalid duration");
  });
  it("formats what it parses", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000_000 }), (seconds) => {
        expect(parseDuration(formatDuration(seconds * 1000))).toBe(seconds * 1000);
      }),
    );
  });
});
