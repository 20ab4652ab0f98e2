import { describe, expect, it } from "vitest";
import { checkTotp, hotp, totp, totpStep } from "./totp.js";

// RFC 6238 Appendix B: the seeds are ASCII, 20/32/64 bytes for SHA-1/256/512; 8 digits.
const SEED_SHA1 = Buffer.from("12345678901234567890");
const SEED_SHA256 = Buffer.from("12345678901234567890123456789012");
const SEED_SHA512 = Buffer.from("1234567890123456789012345678901234567890123456789012345678901234");
const VECTORS: [number, string, string, string][] = [
  [59, "94287082", "46119246", "90693936"],
  [1111111109, "07081804", "68084774", "25091201"],
  [1111111111, "14050471", "67062674", "99943326"],
  [1234567890, "89005924", "91819424", "93441116"],
  [2000000000, "69279037", "90698825", "38618901"],
  [20000000000, "65353130", "77737706", "47863826"],
];

describe("TOTP (RFC 6238)", () => {
  it.each(VECTORS)("T=%i matches the RFC's SHA-1, SHA-256 and SHA-512 values", (seconds, sha1, sha256, sha512) => {
    expect(totp(SEED_SHA1, seconds * 1000, 8, "sha1")).toBe(sha1);
    expect(totp(SEED_SHA256, seconds * 1000, 8, "sha256")).toBe(sha256);
    expect(totp(SEED_SHA512, seconds * 1000, 8, "sha512")).toBe(sha512);
  });

  it("RFC 4226 Appendix D HOTP values (6 digits)", () => {
    const expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
    expected.forEach((code, counter) => expect(hotp(SEED_SHA1, counter)).toBe(code));
  });

  it("accepts the current code and one step either side, nothing further", () => {
    const now = 1_700_000_000_000;
    const step = totpStep(now);
    for (const offset of [-1, 0, 1]) expect(checkTotp(SEED_SHA1, hotp(SEED_SHA1, step + offset), now, null)).toEqual({ ok: true, step: step + offset });
    for (const offset of [-3, -2, 2, 3]) expect(checkTotp(SEED_SHA1, hotp(SEED_SHA1, step + offset), now, null)).toEqual({ ok: false, reason: "wrong" });
  });

  it("refuses a code whose step was already used, and any earlier one", () => {
    const now = 1_700_000_000_000;
    const step = totpStep(now);
    const code = hotp(SEED_SHA1, step);
    expect(checkTotp(SEED_SHA1, code, now, step)).toEqual({ ok: false, reason: "replayed" });
    expect(checkTotp(SEED_SHA1, hotp(SEED_SHA1, step - 1), now, step)).toEqual({ ok: false, reason: "replayed" });
    expect(checkTotp(SEED_SHA1, hotp(SEED_SHA1, step + 1), now, step)).toEqual({ ok: true, step: step + 1 });
  });

  it("refuses malformed codes without comparing", () => {
    for (const code of ["", "12345", "1234567", "12a456", " 123456", "１２３４５６"]) expect(checkTotp(SEED_SHA1, code, 0, null)).toEqual({ ok: false, reason: "malformed" });
  });
});
