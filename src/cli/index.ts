import "reflect-metadata";
import { Command, CommanderError } from "commander";
import { registerAgents } from "./commands/agents.js";
import { registerAccess } from "./commands/access.js";
import { registerDelegate } from "./commands/delegate.js";
import { registerDelegations } from "./commands/delegations.js";
import { registerRequests } from "./commands/requests.js";
import { registerAudit } from "./commands/audit.js";
import { registerCa } from "./commands/ca.js";
import { registerDb } from "./commands/db.js";
import { registerDaemon, registerSvid } from "./commands/daemon.js";
import { registerLlm } from "./commands/llm.js";
import { registerJoins } from "./commands/joins.js";
import { registerLocks } from "./commands/locks.js";
import { registerMcp } from "./commands/mcp.js";
import { registerRoles } from "./commands/roles.js";
import { registerRun } from "./commands/run.js";
import { registerStart } from "./commands/start.js";
import { registerUsage } from "./commands/usage.js";
import { registerUsers } from "./commands/users.js";
import { registerLogin } from "./commands/login.js";
import { registerSso } from "./commands/sso.js";
import { type Io, type OutputFormat, printError, processIo } from "./output.js";

export const VERSION = "0.1.0";

export function buildProgram(io: Io, context: { setRunning: (stop: () => Promise<void>) => void; setExitCode: (code: number) => void }): Command {
  const program = new Command("mandate")
    .description("Short-lived cryptographic identities for AI agents, and least privilege enforced inline")
    .version(VERSION)
    .showHelpAfterError("(add --help for usage)")
    .configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) })
    .exitOverride()
    .addHelpText(
      "after",
      `
Getting started:
  mandate start                                   start the control plane (SQLite in ./.mandate)
  mandate agents add deploy-auditor --role incident-reader
  mandate daemon --auth-server https://127.0.0.1:7443 --join-token <token> --out ./agent-creds --oneshot
  mandate svid jwt --audience example --out ./agent-creds`,
    );
  registerStart(program, io, context);
  registerAgents(program, io);
  registerJoins(program, io);
  registerLocks(program, io);
  registerCa(program, io);
  registerAudit(program, io);
  registerDaemon(program, io);
  registerSvid(program, io);
  registerRun(program, io, context);
  registerLlm(program, io);
  registerDb(program, io);
  registerUsage(program, io);
  registerMcp(program, io);
  registerRoles(program, io);
  registerDelegate(program, io);
  registerDelegations(program, io);
  registerRequests(program, io);
  registerAccess(program, io, context.setExitCode);
  registerUsers(program, io);
  registerLogin(program, io);
  registerSso(program, io);
  for (const command of program.commands) command.exitOverride().configureOutput({ writeOut: (s) => io.out(s), writeErr: (s) => io.err(s) });
  return program;
}

/** Runs the CLI; resolves to the exit code once the command (or the server it starts) is done. */
export async function runCli(argv: string[], io: Io = processIo): Promise<number> {
  let stop: (() => Promise<void>) | undefined;
  let stopRequested: Promise<void> | undefined;
  // Signal handlers go in as soon as a long-running command says it is up, before it
  // prints that it is ready, so a supervisor's SIGTERM right after the banner is honoured.
  const setRunning = (fn: () => Promise<void>) => {
    stop = fn;
    stopRequested = new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
    });
  };
  let exitCode = 0;
  const program = buildProgram(io, { setRunning, setExitCode: (code) => (exitCode = code) });
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

