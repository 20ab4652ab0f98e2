import { hash } from "node:crypto";

/** The chain starts from 32 zero bytes, so the first event's link is well defined. */
export const GENESIS_CHAIN_HASH = "0".repeat(64);

/**
 * RFC 6962 leaf hash of an event's canonical JSON: SHA-256(0x00 || UTF-8 body). The
 * same value serves the hash chain and the Merkle tree. ("\0" encodes as the single
 * byte 0x00, which lets the one-shot hash take the body without a copy.)
 */
export function eventLeafHash(canonicalBody: string): string {
  return hash("sha256", `\0${canonicalBody}`, "hex");
}

export function eventLeafDigest(canonicalBody: string): Buffer {
  return hash("sha256", `\0${canonicalBody}`, "buffer");
}

/** Each link commits to everything before it: chain_n = SHA-256(chain_{n-1} || leaf_n). */
export function nextChainHash(previousHex: string, leafHex: string): string {
  return hash("sha256", Buffer.from(previousHex + leafHex, "hex"), "hex");
}
