import { execFile } from "node:child_process";
import { promisify } from "node:util";

const exec = promisify(execFile);

export interface Ceiling {
  signPerSecond: number;
  verifyPerSecond: number;
  /** One verify (the CSR) plus one sign (the leaf) per issuance, on one core. */
  issuancePerSecond: number;
}

/** The machine's ECDSA P-256 ceiling, measured by `openssl speed` in the same run. */
export async function measureOpensslCeiling(seconds = 3): Promise<Ceiling> {
  const { stdout } = await exec("openssl", ["speed", "-seconds", String(seconds), "ecdsap256"], { maxBuffer: 1 << 20 });
  const line = stdout.split("\n").find((l) => /256 bits ecdsa \(nistp256\)/.test(l));
  if (!line) throw new Error(`cannot parse openssl speed output:\n${stdout}`);
  const numbers = line.trim().split(/\s+/).map(Number).filter((n) => Number.isFinite(n));
  const signPerSecond = numbers[numbers.length - 2]!;
  const verifyPerSecond = numbers[numbers.length - 1]!;
  return { signPerSecond, verifyPerSecond, issuancePerSecond: 1 / (1 / signPerSecond + 1 / verifyPerSecond) };
}
