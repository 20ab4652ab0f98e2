import { createHash, randomBytes } from "node:crypto";
import { MandateError } from "../errors/index.js";

/**
 * A join token is `mj1.<secret>.<ca pin>`: 256 random bits the server stores only
 * as a hash, and the SHA-256 pin of the root CA, so the joining host can check on
 * first contact that it reached the real control plane (kubeadm's discovery-token idea).
 * The `mj1.` prefix makes leaked tokens easy for secret scanners to find.
 */
const PREFIX = "mj1";

export interface JoinTokenParts {
  secret: string;
  caPin: string;
}

export function generateJoinToken(caPin: string): { token: string; secretHash: string } {
  const secret = randomBytes(32).toString("base64url");
  const pinBytes = Buffer.from(parseCaPin(caPin).slice("sha256:".length), "hex");
  return { token: `${PREFIX}.${secret}.${pinBytes.toString("base64url")}`, secretHash: hashJoinSecret(secret) };
}

export function parseJoinToken(token: string): JoinTokenParts {
  const parts = token.trim().split(".");
  if (parts.length !== 3 || parts[0] !== PREFIX || !/^[A-Za-z0-9_-]{43}$/.test(parts[1]!) || !/^[A-Za-z0-9_-]{43}$/.test(parts[2]!)) {
    throw new MandateError("INVALID_JOIN_TOKEN", "malformed join token: expected mj1.<secret>.<ca-pin> as printed by `mandate agents add`");
  }
  return { secret: parts[1]!, caPin: `sha256:${Buffer.from(parts[2]!, "base64url").toString("hex")}` };
}

export function hashJoinSecret(secret: string): string {
  return createHash("sha256").update(secret).digest("hex");
}

export function parseCaPin(pin: string): string {
  const normalized = pin.trim().toLowerCase();
  if (!/^sha256:[0-9a-f]{64}$/.test(normalized)) {
    throw new MandateError("INVALID_ARGUMENT", `invalid CA pin ${JSON.stringify(pin)}: expected sha256:<64 hex digits> (see \`mandate ca show\`)`);
  }
  return normalized;
}
