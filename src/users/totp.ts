import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * TOTP (RFC 6238) over HOTP (RFC 4226): HMAC-SHA-1, 30-second steps, 6 digits, as every
 * authenticator app expects. A code is accepted one step either side of now (clock
 * drift), and only for a step later than the last one used, so a code seen over a
 * shoulder or in a log cannot be replayed.
 */
export const TOTP_PERIOD_S = 30;
export const TOTP_DIGITS = 6;
export const TOTP_WINDOW = 1;
export const TOTP_SECRET_BYTES = 20;

export function generateTotpSecret(): Buffer {
  return randomBytes(TOTP_SECRET_BYTES);
}

export function hotp(secret: Uint8Array, counter: number, digits = TOTP_DIGITS, algorithm: "sha1" | "sha256" | "sha512" = "sha1"): string {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac(algorithm, secret).update(message).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = ((mac[offset]! & 0x7f) << 24) | (mac[offset + 1]! << 16) | (mac[offset + 2]! << 8) | mac[offset + 3]!;
  return String(binary % 10 ** digits).padStart(digits, "0");
}

export function totpStep(nowMs: number): number {
  return Math.floor(nowMs / 1000 / TOTP_PERIOD_S);
}

export function totp(secret: Uint8Array, nowMs: number, digits = TOTP_DIGITS, algorithm: "sha1" | "sha256" | "sha512" = "sha1"): string {
  return hotp(secret, totpStep(nowMs), digits, algorithm);
}

export type TotpCheck = { ok: true; step: number } | { ok: false; reason: "malformed" | "wrong" | "replayed" };

/**
 * Finds the step within the window whose code matches; every candidate is compared in
 * constant time and all are tried, so timing does not tell which step matched.
 */
export function checkTotp(secret: Uint8Array, code: string, nowMs: number, lastUsedStep: number | null): TotpCheck {
  if (!/^\d{6}$/.test(code)) return { ok: false, reason: "malformed" };
  const now = totpStep(nowMs);
  const given = Buffer.from(code);
  let matched: number | undefined;
  let sawMatch = false;
  for (let step = now - TOTP_WINDOW; step <= now + TOTP_WINDOW; step++) {
    const equal = timingSafeEqual(Buffer.from(hotp(secret, step)), given);
    if (equal) {
      sawMatch = true;
      if (lastUsedStep === null || step > lastUsedStep) matched ??= step;
    }
  }
  if (matched !== undefined) return { ok: true, step: matched };
  return { ok: false, reason: sawMatch ? "replayed" : "wrong" };
}
