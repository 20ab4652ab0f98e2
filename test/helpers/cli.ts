import { runCli } from "../../src/cli/index.js";

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json<T = any>(): T;
}

/** Runs a `mandate` command in-process and captures what it prints. */
export async function mandate(...args: string[]): Promise<CliResult> {
  let stdout = "";
  let stderr = "";
  const code = await runCli(["node", "mandate", ...args], {
    out: (text) => (stdout += text.endsWith("\n") ? text : `${text}\n`),
    err: (text) => (stderr += text.endsWith("\n") ? text : `${text}\n`),
  });
  return {
    code,
    stdout,
    stderr,
    json() {
      return JSON.parse(stdout);
    },
  };
}
