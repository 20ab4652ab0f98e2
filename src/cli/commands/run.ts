import { spawn } from "node:child_process";
import { resolve } from "node:path";
import type { Command } from "commander";
import { MandateError } from "../../errors/index.js";
import type { Io } from "../output.js";

/** Exit codes a shell would give: the child's own, or 128 + signal number when it was killed. */
const SIGNAL_NUMBERS: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };

export function registerRun(program: Command, io: Io, context: { setExitCode: (code: number) => void }): void {
  program
    .command("run")
    .description("Run a command with SPIFFE_ENDPOINT_SOCKET pointing at the local daemon's Workload API")
    .option("--socket <path>", "the daemon's Workload API socket (env MANDATE_SOCKET)", process.env.MANDATE_SOCKET ?? "/run/mandate/agent.sock")
    .argument("<command...>", "the command and its arguments (put them after --)")
    .addHelpText("after", "\nExample:\n  mandate daemon --out /run/mandate --socket /run/mandate/agent.sock &\n  mandate run --socket /run/mandate/agent.sock -- python3 agent.py")
    .action(async (command: string[], opts: { socket: string }) => {
      const [file, ...args] = command;
      if (!file) throw new MandateError("INVALID_ARGUMENT", "give the command to run after --");
      const endpoint = `unix://${resolve(opts.socket)}`;
      const code = await new Promise<number>((done, fail) => {
        const child = spawn(file, args, { stdio: "inherit", env: { ...process.env, SPIFFE_ENDPOINT_SOCKET: endpoint } });
        child.once("error", (error) => fail(new MandateError("INVALID_ARGUMENT", `cannot run ${file}: ${error.message}`)));
        child.once("exit", (exitCode, signal) => done(exitCode ?? 128 + (signal ? (SIGNAL_NUMBERS[signal] ?? 1) : 1)));
      });
      if (code !== 0) io.err(`${file} exited with ${code}`);
      context.setExitCode(code);
    });
}
