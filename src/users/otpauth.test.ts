import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { base32Decode, base32Encode } from "./base32.js";
import { buildOtpauthUri, parseOtpauthUri } from "./otpauth.js";

describe("base32 (RFC 4648)", () => {
  it("matches the RFC 4648 §10 vectors", () => {
    const vectors: [string, string][] = [["", ""], ["f", "MY======"], ["fo", "MZXQ===="], ["foo", "MZXW6==="], ["foob", "MZXW6YQ="], ["fooba", "MZXW6YTB"], ["foobar", "MZXW6YTBOI======"]];
    for (const [plain, encoded] of vectors) {
      expect(base32Encode(Buffer.from(plain), true)).toBe(encoded);
      expect(base32Decode(encoded).toString()).toBe(plain);
    }
  });

  it("round-trips any bytes, and reads lower case, spaces and missing padding", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const encoded = base32Encode(bytes);
        expect([...base32Decode(encoded)]).toEqual([...bytes]);
        expect([...base32Decode(encoded.toLowerCase().replace(/(.{4})/g, "$1 "))]).toEqual([...bytes]);
        expect([...base32Decode(base32Encode(bytes, true))]).toEqual([...bytes]);
      }),
    );
  });

  it("never reads two different texts as one secret: non-canonical trailing bits and stray characters are refused", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (text) => {
        let decoded: Buffer;
        try {
          decoded = base32Decode(text);
        } catch (error) {
          expect((error as { code: string }).code).toBe("INVALID_ARGUMENT");
          return;
        }
        // Whatever decodes re-encodes to the same letters (ignoring case, spaces, dashes and padding).
        expect(base32Encode(decoded)).toBe(text.replace(/[\s-]/g, "").replace(/=+$/, "").toUpperCase());
      }),
    );
    expect(base32Decode("MY").toString()).toBe("f");
    expect(() => base32Decode("MZ")).toThrow(/trailing bits/);
    expect(() => base32Decode("M1")).toThrow(/character/);
  });
});

describe("otpauth:// URIs", () => {
  const account = fc.string({ minLength: 1, maxLength: 30 }).filter((s) => !s.includes(":"));
  it("a URI Mandate writes parses back to the same issuer, account and secret", () => {
    fc.assert(
      fc.property(account, account, fc.uint8Array({ minLength: 10, maxLength: 64 }), (issuer, name, secret) => {
        const parsed = parseOtpauthUri(buildOtpauthUri(issuer, name, secret));
        expect(parsed).toMatchObject({ issuer, account: name, algorithm: "SHA1", digits: 6, period: 30 });
        expect([...parsed.secret]).toEqual([...secret]);
      }),
    );
  });

  it("arbitrary text never crashes the parser: it parses or says why not", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 200 }), fc.webUrl().map((u) => u.replace(/^https?/, "otpauth"))), (text) => {
        try {
          parseOtpauthUri(text);
        } catch (error) {
          expect((error as { code: string }).code).toBe("INVALID_ARGUMENT");
        }
      }),
    );
  });

  it("refuses HOTP keys, missing secrets, odd digits and contradicting issuers", () => {
    expect(() => parseOtpauthUri("otpauth://hotp/x?secret=MZXW6YTB")).toThrow(/totp/);
    expect(() => parseOtpauthUri("otpauth://totp/x")).toThrow(/secret/);
    expect(() => parseOtpauthUri("otpauth://totp/x?secret=MZXW6YTB&digits=4")).toThrow(/digits/);
    expect(() => parseOtpauthUri("otpauth://totp/A:x?secret=MZXW6YTB&issuer=B")).toThrow(/differ/);
    expect(parseOtpauthUri("otpauth://totp/Example:alice@google.com?secret=JBSWY3DPEHPK3PXP&issuer=Example")).toMatchObject({ issuer: "Example", account: "alice@google.com" });
  });
});
