import { Command, CommanderError } from "commander";
import { type Io, type OutputFormat, printError } from "./output.js";
import { untilStopSignal } from "./signals.js";

export const VERSION = "0.1.0";

export interface ProgramContext {
  /** a long-running command (start, run) says it is up; the stop runs on SIGINT/SIGTERM */
  setRunning: (stop: () => Promise<void>) => void;
  setExitCode: (code: number) => void;
}

export type ProgramBuilder = (io: Io, context: ProgramContext) => Command;

/** The `mandate` root command every program (the full CLI, the agent-side one) starts from. */
export function rootCommand(io: Io, helpAfter: string): Command {
  return new Command("mandate")
    .description("Short-lived cryptographic identities for AI agents, and least privilege enforced inline")
    .version(VERSION)
    .showHelpAfterError("(add --help for usage)")
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride()
    .addHelpText("after", helpAfter);
}

/** Subcommands report through `io` and throw instead of exiting, as the root does. */
export function finishProgram(program: Command, io: Io): Command {
  for (const command of program.commands) command.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  return program;
}

/** Runs a program; resolves to the exit code once the command (or the server it starts) is done. */
export async function runProgram(argv: string[], io: Io, build: ProgramBuilder): Promise<number> {
  let stop: (() => Promise<void>) | undefined;
  let stopRequested: Promise<void> | undefined;
  // Signal handlers go in as soon as a long-running command says it is up, before it
  // prints that it is ready, so a supervisor's SIGTERM right after the banner is honoured.
  const setRunning = (fn: () => Promise<void>) => {
    stop = fn;
    stopRequested = untilStopSignal();
  };
  let exitCode = 0;
  const program = build(io, { setRunning, setExitCode: (code) => (exitCode = code) });
  const format: OutputFormat = argv.some((a, i) => (a === "--format" && argv[i + 1] === "json") || a === "--format=json") ? "json" : "table";
  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    return printError(io, error, format);
  }
  if (!stop || !stopRequested) return exitCode;
  await stopRequested;
  await stop();
  return 0;
}
