import { MandateError } from "../errors/index.js";

/** RFC 4648 base32, the alphabet authenticator apps read TOTP secrets in. */
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const VALUES = new Map([...ALPHABET].map((c, i) => [c, i]));

export function base32Encode(bytes: Uint8Array, padding = false): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  if (padding) while (out.length % 8 !== 0) out += "=";
  return out;
}

/**
 * Decodes base32 as people and apps write it: case-insensitive, spaces and padding
 * ignored. Anything else (a wrong character, trailing bits that are not zero, an
 * impossible length) is refused rather than silently read as some other secret.
 */
export function base32Decode(text: string): Buffer {
  const clean = text.replace(/[\s-]/g, "").replace(/=+$/, "").toUpperCase();
  if (clean.length > 1024) throw new MandateError("INVALID_ARGUMENT", "base32 text is too long");
  // Lengths that leave 1, 3 or 6 characters over cannot come from whole bytes.
  if ([1, 3, 6].includes(clean.length % 8)) throw new MandateError("INVALID_ARGUMENT", "base32 text has an impossible length");
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const char of clean) {
    const value = VALUES.get(char);
    if (value === undefined) throw new MandateError("INVALID_ARGUMENT", `invalid base32 character ${JSON.stringify(char)}`);
    buffer = (buffer << 5) | value;
    bits += 5;
    if (bits >= 8) {
      out.push((buffer >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
    buffer &= (1 << bits) - 1;
  }
  if (buffer !== 0) throw new MandateError("INVALID_ARGUMENT", "base32 text has non-zero trailing bits");
  return Buffer.from(out);
}
