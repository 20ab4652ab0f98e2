import { createHash } from "node:crypto";

/** The chain starts from 32 zero bytes, so the first event's link is well defined. */
export const GENESIS_CHAIN_HASH = "0".repeat(64);

/** RFC 6962 leaf hash of an event's canonical JSON: the same value serves the hash chain and the Merkle tree. */
export function eventLeafHash(canonicalBody: string): string {
  return createHash("sha256").update(Buffer.from([0])).update(canonicalBody, "utf8").digest("hex");
}

/** Each link commits to everything before it: chain_n = SHA-256(chain_{n-1} || leaf_n). */
export function nextChainHash(previousHex: string, leafHex: string): string {
  return createHash("sha256").update(Buffer.from(previousHex, "hex")).update(Buffer.from(leafHex, "hex")).digest("hex");
}
