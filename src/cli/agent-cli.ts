import "reflect-metadata";
import type { Command } from "commander";
import { registerDaemon, registerSvid } from "./commands/daemon.js";
import { registerRun } from "./commands/run.js";
import { type Io, processIo } from "./output.js";
import { type ProgramContext, finishProgram, rootCommand, runProgram } from "./program.js";

/**
 * The commands an agent's host runs (`daemon`, `svid`, `run`), without the control plane,
 * proxies and admin commands: a long-running daemon should not carry the server's modules
 * (about 100 MB of resident memory) it never uses. bin/mandate.js picks this program for
 * those three commands.
 */
export function buildAgentProgram(io: Io, context: ProgramContext): Command {
  const program = rootCommand(io, "\n(agent-side commands; `mandate --help` lists every command)");
  registerDaemon(program, io);
  registerSvid(program, io);
  registerRun(program, io, context);
  return finishProgram(program, io);
}

export function runAgentCli(argv: string[], io: Io = processIo): Promise<number> {
  return runProgram(argv, io, buildAgentProgram);
}
