import { resolve } from "node:path";
import type { Command } from "commander";
import { MandateError } from "../../errors/index.js";
import { runMcpConnect } from "../../mcp/connect.js";
import { type Io, printJson } from "../output.js";

const CLIENT_FILES: Record<string, string> = {
  claude: "claude_desktop_config.json (Claude Desktop: Settings → Developer → Edit Config)",
  cursor: "~/.cursor/mcp.json (or .cursor/mcp.json in a project)",
  vscode: ".vscode/mcp.json in the workspace (or the user-level MCP configuration)",
};

/** The snippet a desktop client needs: it runs `mandate mcp connect`, which holds the identity. */
export function mcpClientConfig(client: string, server: string, credentialDir: string, options: { mandate?: string; delegationEnv?: boolean; url?: string } = {}): Record<string, unknown> {
  const args = ["mcp", "connect", server, "--creds", credentialDir];
  const stdio = { command: options.mandate ?? "mandate", args, ...(options.delegationEnv ? { env: { MANDATE_DELEGATION: "<delegation token>" } } : {}) };
  const http = options.url ? { url: options.url } : undefined;
  switch (client) {
    case "claude":
    case "cursor":
      return { mcpServers: { [server]: http ?? stdio } };
    case "vscode":
      return { servers: { [server]: http ? { type: "http", ...http } : { type: "stdio", ...stdio } } };
    default:
      throw new MandateError("INVALID_ARGUMENT", `unknown client ${JSON.stringify(client)}: use claude, cursor or vscode`);
  }
}

export function registerMcpClientCommands(mcp: Command, io: Io): void {
  mcp
    .command("connect <server>")
    .description("Run as a stdio MCP server that relays to the Mandate proxy with this host's agent identity")
    .option("--creds <dir>", "the agent's credential directory (kept fresh by `mandate daemon`)", "./agent-creds")
    .option("--auth-server <url>", "the control plane, https://HOST:PORT (default: the one the credentials came from)")
    .option("--delegation <token>", "delegation token to present (or env MANDATE_DELEGATION)")
    .addHelpText(
      "after",
      `
Desktop clients start this command themselves; see \`mandate mcp config\`.
Example (by hand, speaking JSON-RPC on stdin/stdout):
  mandate mcp connect k8s --creds /run/mandate`,
    )
    .action(async (server: string, opts: { creds: string; authServer?: string; delegation?: string }) => {
      // stdout carries the protocol: nothing else may be printed there.
      await runMcpConnect({
        server,
        credentialDir: opts.creds,
        authServer: opts.authServer,
        delegationToken: opts.delegation ?? process.env.MANDATE_DELEGATION,
        input: process.stdin,
        output: process.stdout,
        log: (line) => process.stderr.write(`mandate mcp connect: ${line}\n`),
      });
    });

  mcp
    .command("config")
    .description("Print the MCP client configuration snippet for Claude Desktop, Cursor or VS Code")
    .requiredOption("--client <client>", "claude, cursor or vscode")
    .requiredOption("--server <name>", "the catalog server to connect to")
    .option("--creds <dir>", "the agent's credential directory on this host", "./agent-creds")
    .option("--http <url>", "connect the client straight to the proxy URL (clients that speak the MCP authorization spec) instead of through `mandate mcp connect`")
    .option("--with-delegation", "add a MANDATE_DELEGATION environment entry to fill in")
    .addHelpText(
      "after",
      `
Examples:
  mandate mcp config --client claude --server k8s --creds /run/mandate
  mandate mcp config --client vscode --server k8s --with-delegation`,
    )
    .action((opts: { client: string; server: string; creds: string; http?: string; withDelegation?: boolean }) => {
      const snippet = mcpClientConfig(opts.client, opts.server, resolve(opts.creds), { delegationEnv: Boolean(opts.withDelegation), ...(opts.http ? { url: opts.http } : {}) });
      io.err(`Paste into ${CLIENT_FILES[opts.client]}:`);
      printJson(io, snippet);
    });
}
