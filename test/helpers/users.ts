import { useSecretInput } from "../../src/cli/secret-input.js";
import { parseOtpauthUri, totp } from "../../src/users/index.js";
import { type CliResult, mandate } from "./cli.js";

/** Runs a CLI command with `answers` served as stdin (`--password-stdin`) and as terminal prompts, in order. */
export async function mandateWithInput(answers: string[], ...args: string[]): Promise<CliResult> {
  const queue = [...answers];
  const next = async () => {
    const value = queue.shift();
    if (value === undefined) throw new Error("the command asked for more input than the test supplied");
    return value;
  };
  const restore = useSecretInput({ readStdin: next, promptHidden: next });
  try {
    return await mandate(...args);
  } finally {
    restore();
  }
}

export interface TestUser {
  name: string;
  password: string;
  secret: Buffer;
  /** the TOTP code for now (or `offsetSteps` later) */
  code(offsetSteps?: number): string;
}

/** `mandate users add` through the real CLI, with a chosen password; returns what the user needs to log in. */
export async function addTestUser(dataDir: string, name: string, roles: string[] = [], password = `pw-${name}-correct-horse`): Promise<TestUser> {
  const result = await mandateWithInput([password], "users", "add", name, ...(roles.length ? ["--roles", roles.join(",")] : []), "--password-stdin", "--data-dir", dataDir, "--format", "json");
  if (result.code !== 0) throw new Error(`users add failed: ${result.stderr}`);
  const { secret } = parseOtpauthUri(result.json().totp.uri);
  return { name, password, secret, code: (offsetSteps = 0) => totp(secret, Date.now() + offsetSteps * 30_000) };
}

/** `mandate login` for a local user, scripted (--password-stdin, --totp). */
export function loginTestUser(url: string, caPin: string, user: TestUser, identity: string, extra: string[] = [], code = user.code()): Promise<CliResult> {
  return mandateWithInput([user.password], "login", "--auth-server", url, "--ca-pin", caPin, "--user", user.name, "--password-stdin", "--totp", code, "--identity", identity, "--format", "json", ...extra);
}
