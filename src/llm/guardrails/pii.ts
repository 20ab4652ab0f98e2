import type { PiiKind } from "../config.js";
import { type Finding, scanWindows } from "./finding.js";

/**
 * Personal data: e-mail addresses, phone numbers, payment card numbers (Luhn-checked),
 * national identifiers (US SSN with its reserved ranges excluded, UK National Insurance
 * numbers) and IBANs (ISO 13616 mod-97 checked). Every pattern has bounded repetition
 * and no nested ambiguity, so its work is linear in the text.
 */
// Not after ":" or "/": that is the password of a URL's userinfo (user:pass@host), not an address.
const EMAIL = /(?<![:/A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b/g;
const PHONE = /(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){2,5}(?!\d)|(?<![\w+])(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]\d{3,4}\b|(?<![\w+])\+\d{8,15}\b/g;
const CARD = /(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)/g;
const SSN = /\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b/g;
const NINO = /\b(?!BG|GB|NK|KN|TN|NT|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b/g;
const IBAN = /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b/g;

export function luhnValid(digits: string): boolean {
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

export function ibanValid(candidate: string): boolean {
  const iban = candidate.replace(/ /g, "");
  if (iban.length < 15 || iban.length > 34) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (const ch of rearranged) {
    const code = ch.charCodeAt(0);
    const value = code >= 65 ? String(code - 55) : ch;
    for (const digit of value) remainder = (remainder * 10 + (digit.charCodeAt(0) - 48)) % 97;
  }
  return remainder === 1;
}

function matches(text: string, pattern: RegExp, kind: string, valid?: (m: string) => boolean): Finding[] {
  const out: Finding[] = [];
  for (const m of text.matchAll(pattern)) {
    if (valid && !valid(m[0])) continue;
    out.push({ kind, start: m.index, end: m.index + m[0].length });
  }
  return out;
}

const cardValid = (m: string) => {
  const digits = m.replace(/[ -]/g, "");
  return digits.length >= 13 && digits.length <= 19 && luhnValid(digits) && !/^(\d)\1+$/.test(digits);
};
const phoneValid = (m: string) => {
  const digits = m.replace(/\D/g, "").length;
  return digits >= 8 && digits <= 15;
};

export const ALL_PII_KINDS: PiiKind[] = ["email", "phone", "card", "national_id", "iban"];

export function detectPii(text: string, kinds: PiiKind[] = ALL_PII_KINDS): Finding[] {
  const wanted = new Set(kinds);
  return scanWindows(text, (chunk) => {
    const found: Finding[] = [];
    if (wanted.has("email")) found.push(...matches(chunk, EMAIL, "email"));
    const cards = wanted.has("card") ? matches(chunk, CARD, "card", cardValid) : [];
    found.push(...cards);
    if (wanted.has("national_id")) found.push(...matches(chunk, SSN, "ssn"), ...matches(chunk, NINO, "nino"));
    if (wanted.has("iban")) found.push(...matches(chunk, IBAN, "iban", ibanValid));
    if (wanted.has("phone")) {
      // A card number is not also a phone number.
      for (const p of matches(chunk, PHONE, "phone", phoneValid)) if (!cards.some((c) => p.start < c.end && c.start < p.end)) found.push(p);
    }
    return found;
  });
}
