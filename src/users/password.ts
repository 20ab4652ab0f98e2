import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { MandateError } from "../errors/index.js";

/**
 * Password hashes are scrypt (RFC 7914) with a per-user 16-byte salt, stored in a
 * self-describing form so the cost can be raised later without invalidating old hashes:
 *
 *   $scrypt$ln=15,r=8,p=1$<salt, base64>$<32-byte key, base64>
 *
 * ln=15 (N = 32768), r = 8, p = 1 costs 32 MiB and roughly 50-100 ms per guess on one
 * core: the OWASP baseline for scrypt.
 */
export interface ScryptCost {
  /** log2 of N, the CPU/memory cost. */
  ln: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT_COST: ScryptCost = { ln: 15, r: 8, p: 1 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;
const FORMAT = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;
export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 1024;

function derive(password: string, salt: Buffer, cost: ScryptCost): Promise<Buffer> {
  const N = 2 ** cost.ln;
  return new Promise((resolve, reject) => {
    // maxmem must exceed 128·N·r, or node refuses the parameters.
    scrypt(password.normalize("NFC"), salt, KEY_BYTES, { N, r: cost.r, p: cost.p, maxmem: 256 * N * cost.r }, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

export function assertAcceptablePassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) throw new MandateError("INVALID_ARGUMENT", `passwords must be at least ${MIN_PASSWORD_LENGTH} characters`);
  if (password.length > MAX_PASSWORD_LENGTH) throw new MandateError("INVALID_ARGUMENT", `passwords must be at most ${MAX_PASSWORD_LENGTH} characters`);
}

export async function hashPassword(password: string, cost: ScryptCost = DEFAULT_SCRYPT_COST, salt: Buffer = randomBytes(SALT_BYTES)): Promise<string> {
  const key = await derive(password, salt, cost);
  return `$scrypt$ln=${cost.ln},r=${cost.r},p=${cost.p}$${salt.toString("base64")}$${key.toString("base64")}`;
}

export function parsePasswordHash(encoded: string): { cost: ScryptCost; salt: Buffer; key: Buffer } {
  const match = FORMAT.exec(encoded);
  if (!match) throw new MandateError("INTERNAL", "stored password hash is not in the $scrypt$ format");
  const cost = { ln: Number(match[1]), r: Number(match[2]), p: Number(match[3]) };
  // Bounds keep a corrupted row from asking for gigabytes of memory.
  if (cost.ln < 10 || cost.ln > 20 || cost.r < 1 || cost.r > 32 || cost.p < 1 || cost.p > 16) throw new MandateError("INTERNAL", "stored password hash has out-of-range scrypt parameters");
  return { cost, salt: Buffer.from(match[4]!, "base64"), key: Buffer.from(match[5]!, "base64") };
}

/** Constant-time comparison of the derived key; a malformed stored hash never verifies. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  if (password.length > MAX_PASSWORD_LENGTH) return false;
  const { cost, salt, key } = parsePasswordHash(encoded);
  const candidate = await derive(password, salt, cost);
  return candidate.length === key.length && timingSafeEqual(candidate, key);
}

/** Hashes for unknown users are still computed, so response time does not reveal which names exist. */
let dummyHash: Promise<string> | undefined;
export async function burnPasswordCheck(password: string): Promise<void> {
  dummyHash ??= hashPassword(randomBytes(16).toString("hex"));
  await verifyPassword(password, await dummyHash);
}

/** A random password of 20 characters from an unambiguous alphabet (about 115 bits). */
export function generatePassword(): string {
  const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
  const out: string[] = [];
  while (out.length < 20) {
    for (const byte of randomBytes(32)) {
      // Rejection sampling keeps every character equally likely.
      if (byte < 256 - (256 % alphabet.length) && out.length < 20) out.push(alphabet[byte % alphabet.length]!);
    }
  }
  return out.join("");
}
