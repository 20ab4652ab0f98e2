import "reflect-metadata";
import type { Command } from "commander";
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
import { type Io, processIo } from "./output.js";
import { type ProgramContext, finishProgram, rootCommand, runProgram } from "./program.js";

export { VERSION } from "./program.js";

export function buildProgram(io: Io, context: ProgramContext): Command {
  const program = rootCommand(
    io,
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
  return finishProgram(program, io);
}

/** Runs the CLI; resolves to the exit code once the command (or the server it starts) is done. */
export function runCli(argv: string[], io: Io = processIo): Promise<number> {
  return runProgram(argv, io, buildProgram);
}
