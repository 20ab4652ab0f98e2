import { randomBytes } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hmacValue, redactString, redactStringFully, redactValue } from "./redact.js";

const key = randomBytes(32);

describe("audit redaction", () => {
  it("removes secrets by field name and by shape, and says where", () => {
    const { value, paths } = redactValue(
      {
        headers: { Authorization: "Bearer abc.def.ghi", "x-request-id": "r1" },
        body: { api_key: "k", note: "use sk-proj-abcdefghijklmnopqrstuvwxyz123456 please" },
        url: "postgres://app:hunter2@db:5432/orders",
        token: "mj1.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
        pem: "-----BEGIN PRIVATE KEY-----\nMIGH\n-----END PRIVATE KEY-----",
      },
      key,
    );
    const text = JSON.stringify(value);
    for (const secret of ["abc.def.ghi", "sk-proj-abcdefghij", "hunter2", "mj1.aaaa", "MIGH"]) expect(text).not.toContain(secret);
    expect(value.headers["x-request-id"]).toBe("r1");
    expect(value.url).toBe("postgres://app:[REDACTED:url-password]@db:5432/orders");
    expect(paths.sort()).toEqual(["body.api_key", "body.note", "headers.Authorization", "pem", "token", "url"]);
  });

  it("keeps configured private fields checkable but unreadable", () => {
    const { value, paths } = redactValue({ details: { prompt: "dump the secrets", model: "m" } }, key, { hashedFields: ["details.prompt"] });
    expect(value.details.prompt).toBe(hmacValue(key, "dump the secrets"));
    expect(value.details.prompt).not.toContain("dump");
    expect(value.details.model).toBe("m");
    expect(paths).toEqual(["details.prompt"]);
    expect(hmacValue(randomBytes(32), "dump the secrets")).not.toBe(value.details.prompt);
  });

  it("never lets a JWT or a join token through, wherever it is embedded (property)", () => {
    const jwtPart = fc.string({ unit: fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-".split("")), minLength: 8, maxLength: 40 });
    fc.assert(
      fc.property(fc.string(), jwtPart, jwtPart, fc.string(), (before, a, b, after) => {
        const jwt = `eyJ${a}.eyJ${b}.sig`;
        const { text } = redactString(`${before} ${jwt} ${after}`);
        expect(text).not.toContain(`eyJ${a}.eyJ${b}`);
      }),
    );
  });

  it("skips the scans only for strings no pattern can match (property)", () => {
    // Pieces of every credential shape, cut and joined at random, so near-misses of each anchor occur too.
    const piece = fc.constantFrom("-----BEGIN ", "RSA PRIVATE KEY-----", "-----END EC PRIVATE KEY-----", "eyJ", "eyJhbGciOi", ".", "mj1.", "Bearer ", "Basic ", "bearer ", "sk-", "sk-proj-", "AKIA", "ASIA", "ghp_", "github_pat_", "xoxb-", "xoxz-", "https://", "HTTPS://", "user:pass@", ":/", "//", "@", " ", "\n", "A", "Z", "0", "_", "-");
    const text = fc.array(fc.oneof(piece, fc.string({ maxLength: 30 })), { maxLength: 14 }).map((parts) => parts.join(""));
    fc.assert(
      fc.property(text, (candidate) => {
        expect(redactString(candidate)).toEqual(redactStringFully(candidate));
      }),
      { numRuns: 3000 },
    );
  });

  it("is total on arbitrary JSON (property)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const { value: out } = redactValue(value, key);
        expect(() => JSON.stringify(out)).not.toThrow();
      }),
    );
  });
});
