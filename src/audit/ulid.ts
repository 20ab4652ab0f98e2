import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

let lastTime = -1;
let lastRandom: Buffer = Buffer.alloc(10);
// Random bytes drawn 4 KiB at a time: one randomBytes call per id cost more than the rest of it.
const POOL_SIZE = 4096;
let pool: Buffer = Buffer.alloc(0);
let poolOffset = POOL_SIZE;

function freshRandom(): Buffer {
  if (poolOffset + 10 > pool.length) {
    pool = randomBytes(POOL_SIZE);
    poolOffset = 0;
  }
  // A copy: the increment below must not write into bytes a later id will draw.
  const bytes = Buffer.from(pool.subarray(poolOffset, poolOffset + 10));
  poolOffset += 10;
  return bytes;
}

/**
 * A ULID: 48-bit millisecond time + 80 random bits, Crockford base32. Monotonic
 * within one process (the random part is incremented when the clock has not moved)
 * so ids sort in creation order, which audit search and trace rely on.
 */
export function ulid(now = Date.now()): string {
  if (now <= lastTime) {
    now = lastTime;
    incrementInPlace(lastRandom);
  } else {
    lastTime = now;
    lastRandom = freshRandom();
  }
  let out = "";
  let time = now;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[time % 32] + out;
    time = Math.floor(time / 32);
  }
  // 80 bits → 16 base32 characters, 5 bits at a time.
  let bits = 0;
  let value = 0;
  for (const byte of lastRandom) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(value >> bits) & 31];
    }
    value &= (1 << bits) - 1;
  }
  return out;
}

function incrementInPlace(bytes: Buffer): void {
  for (let i = bytes.length - 1; i >= 0; i--) {
    if (bytes[i] !== 0xff) {
      bytes[i] = bytes[i]! + 1;
      return;
    }
    bytes[i] = 0;
  }
}
