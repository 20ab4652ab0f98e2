import type { Command } from "commander";
import { MandateError } from "../../errors/index.js";
import { type DefinitionRecord, type McpServerEntry, splitCommand } from "../../mcp/index.js";
import { type Io, printJson, printTable } from "../output.js";
import { parseLabels } from "./agents.js";
import { registerMcpClientCommands } from "./mcp-client.js";
import { registerMcpDb } from "./db.js";
import { adminOptions, withAdminClient } from "./shared.js";

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `KEY=value` (env) or `Name: value` / `Name=value` (headers). */
function parsePairs(values: string[] | undefined, flag: string, separators: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const value of values ?? []) {
    const at = Math.min(...separators.map((s) => value.indexOf(s)).filter((i) => i > 0));
    if (!Number.isFinite(at)) throw new MandateError("INVALID_ARGUMENT", `${flag} ${JSON.stringify(value.split(/[:=]/)[0])}…: use ${separators[0] === "=" ? "KEY=value" : "Name: value"}`);
    out[value.slice(0, at).trim()] = value.slice(at + 1).trim();
  }
  return out;
}

function describeServer(server: McpServerEntry): string {
  if (server.transport === "db") return `built-in database server for ${server.database}${server.dbUser ? ` as ${server.dbUser}` : ""}`;
  return server.transport === "stdio" ? (server.command ?? []).join(" ") : `${server.url} (${server.transport === "sse" ? "HTTP+SSE" : "Streamable HTTP"})`;
}

function printDefinitions(io: Io, list: DefinitionRecord[]): void {
  printTable(
    io,
    ["ID", "SERVER", "KIND", "NAME", "STATUS", "CHANGED", "FINDINGS", "FIRST SEEN", "DECIDED BY"],
    list.map((d) => [d.id, d.server, d.kind, d.name, d.status, d.changed?.join(",") ?? (d.previousHash ? "?" : "(new)"), d.findings.length ? d.findings.map((f) => f.kind).join(",") : "-", d.firstSeenAt, d.decidedBy ?? "-"]),
  );
}

export function registerMcp(program: Command, io: Io): void {
  const mcp = program.command("mcp").description("MCP servers behind the proxy: catalog, definition drift, client setup");
  const servers = mcp.command("servers").description("The catalog of MCP servers agents reach through Mandate");

  adminOptions(
    servers
      .command("add <name>")
      .description("Register an MCP server (stdio, spawned by the proxy; or remote Streamable HTTP / HTTP+SSE)")
      .option("--command <command>", 'stdio server to spawn, e.g. "node server.js --read-only"')
      .option("--url <url>", "remote server's MCP endpoint, https://…")
      .option("--sse", "the --url server speaks the deprecated HTTP+SSE transport (2024-11-05)")
      .option("--db <database>", "built-in server with list_tables, describe_table and query on a registered database (mandate db ls), run by the proxy as each calling agent")
      .option("--db-user <user>", "with --db: the database user its statements ask for (the role still decides)")
      .option("--env-secret <KEY=value>", "environment variable only the spawned server sees (repeatable)", collect)
      .option("--header-secret <Name: value>", "HTTP header only the proxy sends upstream, e.g. 'Authorization: Bearer …' (repeatable)", collect)
      .option("--labels <k=v,...>", "labels policies can match, e.g. env=prod,team=sre (repeatable)", collect)
      .option("--owner <name>", "who is responsible for this server")
      .option("--stateless", "share one upstream among all sessions instead of one per session")
      .option("--drift <mode>", "changed or new tool definitions: hide (until approved) or alert (shown, alert raised)", "hide")
      .option("--secrets-in-results <action>", "what to do with secrets in results: redact, block, or flag", "redact")
      .addHelpText(
        "after",
        `
Secrets given with --env-secret / --header-secret stay in the catalog: the API never returns them,
the audit log names them only, and agents never see them.

A --db server runs inside the proxy, one per caller: every statement goes through the database
proxy as the calling agent, with its delegation (policy db:<database>/<class>, audit db.query),
after the MCP gate allowed the tool call (mcp:<name>/query).

Examples:
  mandate mcp servers add orders-db --db orders --db-user readonly --labels env=prod --owner alice
  mandate mcp servers add k8s --command "node k8s-server.js" --env-secret KUBECONFIG_TOKEN=… --labels env=prod,team=sre --owner alice
  mandate mcp servers add github --url https://mcp.example.com/mcp --header-secret "Authorization: Bearer ghp_…" --owner bob
  mandate mcp servers add everything --command "npx -y @modelcontextprotocol/server-everything stdio" --stateless --owner alice`,
      ),
  ).action(async (name: string, opts: Record<string, unknown>, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      if (!opts.owner) throw new MandateError("INVALID_ARGUMENT", "--owner is required: name who is responsible for the server");
      const body = {
        name,
        ...(opts.command ? { command: splitCommand(String(opts.command)) } : {}),
        ...(opts.url ? { url: String(opts.url) } : {}),
        ...(opts.sse ? { transport: "sse" } : {}),
        ...(opts.db ? { database: String(opts.db) } : {}),
        ...(opts.dbUser ? { dbUser: String(opts.dbUser) } : {}),
        labels: parseLabels(opts.labels as string[] | undefined),
        owner: String(opts.owner),
        stateless: Boolean(opts.stateless),
        driftMode: String(opts.drift),
        secretAction: String(opts.secretsInResults),
        envSecrets: parsePairs(opts.envSecret as string[] | undefined, "--env-secret", ["="]),
        headerSecrets: parsePairs(opts.headerSecret as string[] | undefined, "--header-secret", [":", "="]),
      };
      const { server } = await client.request<{ server: McpServerEntry }>("POST", "/v1/mcp/servers", body);
      if (g.format === "json") printJson(io, server);
      else io.out(`MCP server ${server.name} added: ${describeServer(server)}.\nAgents reach it at ${new URL(`/mcp/${server.name}`, client.baseUrl).toString()}; desktop clients: mandate mcp config --client claude --server ${server.name}`);
    });
  });

  adminOptions(servers.command("ls").alias("list").description("List MCP servers")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { servers: list } = await client.request<{ servers: (McpServerEntry & { runningProcesses: number })[] }>("GET", "/v1/mcp/servers");
      if (g.format === "json") printJson(io, list);
      else printTable(io, ["NAME", "TRANSPORT", "TARGET", "LABELS", "OWNER", "DRIFT", "SECRETS"], list.map((s) => [s.name, s.transport, describeServer(s), Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(",") || "-", s.owner, s.driftMode, [...s.secrets.env, ...s.secrets.headers].join(",") || "-"]));
    });
  });

  adminOptions(servers.command("show <name>").description("Show an MCP server and every definition it has shown (with provenance)")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<{ server: McpServerEntry & { runningProcesses: number; era: string | null }; definitions: DefinitionRecord[] }>("GET", `/v1/mcp/servers/${encodeURIComponent(name)}`);
      if (g.format === "json") return printJson(io, response);
      const s = response.server;
      io.out(
        [
          `name          ${s.name}`,
          `transport     ${s.transport} (${describeServer(s)})`,
          `protocol era  ${s.era ?? "not probed yet"}`,
          `labels        ${Object.entries(s.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "-"}`,
          `owner         ${s.owner}`,
          `registered    ${s.createdAt} by ${s.createdBy}`,
          `sessions      ${s.stateless ? "stateless (one shared upstream)" : "one upstream per session"}; ${s.runningProcesses} process(es) running`,
          `drift         ${s.driftMode === "hide" ? "changed/new definitions hidden until approved" : "alert only"}`,
          `secrets       ${[...s.secrets.env.map((e) => `env ${e}`), ...s.secrets.headers.map((h) => `header ${h}`)].join(", ") || "-"} (values never shown); in results: ${s.secretAction}`,
          "",
          "definitions:",
        ].join("\n"),
      );
      printDefinitions(io, response.definitions);
    });
  });

  adminOptions(servers.command("rm <name>").alias("remove").description("Remove an MCP server; its sessions end at once")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { server } = await client.request<{ server: McpServerEntry }>("DELETE", `/v1/mcp/servers/${encodeURIComponent(name)}`);
      if (g.format === "json") printJson(io, server);
      else io.out(`MCP server ${server.name} removed; its definition history stays for the audit.`);
    });
  });

  const drift = mcp.command("drift").description('Changed or new tool/prompt/resource definitions ("rug pulls") awaiting review');
  adminOptions(
    drift
      .command("ls")
      .alias("list")
      .description("List definitions awaiting approval (or --status all)")
      .option("--server <name>", "only this server")
      .option("--status <status>", "pending, approved, rejected or all", "pending")
      .addHelpText("after", "\nExample:\n  mandate mcp drift ls --server k8s\n  mandate mcp drift approve def_01J…"),
  ).action(async (opts: { server?: string; status: string }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const query = new URLSearchParams({ status: opts.status, ...(opts.server ? { server: opts.server } : {}) });
      const { definitions } = await client.request<{ definitions: DefinitionRecord[] }>("GET", `/v1/mcp/drift?${query}`);
      if (g.format === "json") printJson(io, definitions);
      else printDefinitions(io, definitions);
    });
  });
  for (const decision of ["approve", "reject"] as const) {
    adminOptions(drift.command(`${decision} <id>`).description(decision === "approve" ? "Approve a definition: agents see it again" : "Reject a definition: it stays hidden")).action(async (id: string, _opts: unknown, cmd: Command) => {
      await withAdminClient(cmd, async (client, g) => {
        const { definition } = await client.request<{ definition: DefinitionRecord }>("POST", `/v1/mcp/drift/${encodeURIComponent(id)}/${decision}`);
        if (g.format === "json") printJson(io, definition);
        else io.out(`${definition.kind} ${definition.name} on ${definition.server} ${decision === "approve" ? "approved" : "rejected"} (${definition.hash}).`);
      });
    });
  }
  registerMcpClientCommands(mcp, io);
  registerMcpDb(mcp);
}
