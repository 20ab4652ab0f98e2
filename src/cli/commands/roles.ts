import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { type Command, Option } from "commander";
import { MandateError } from "../../errors/index.js";
import { type ApplyResult, compileRole, parseRoleDocuments, type RuntimeEntry, type StoredRole } from "../../policy/index.js";
import { type Io, printJson, printTable } from "../output.js";
import { adminOptions, withAdminClient } from "./shared.js";

const MAX_INPUT_BYTES = 1024 * 1024;

async function readRoleInput(file: string): Promise<{ text: string; origin: string }> {
  if (file === "-") {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of process.stdin) {
      size += (chunk as Buffer).length;
      if (size > MAX_INPUT_BYTES) throw new MandateError("POLICY_INVALID", `more than ${MAX_INPUT_BYTES} bytes of role documents on stdin`);
      chunks.push(chunk as Buffer);
    }
    return { text: Buffer.concat(chunks).toString("utf8"), origin: "stdin" };
  }
  const text = await readFile(file, "utf8").catch((error: NodeJS.ErrnoException) => {
    throw new MandateError("INVALID_ARGUMENT", `cannot read ${file}: ${error.code ?? error.message}`);
  });
  return { text, origin: basename(file) };
}

const ROLE_EXAMPLE = `
A role is a YAML document; several can be applied at once, separated by "---".
Applying is all or nothing: one invalid document and nothing changes.

  kind: role
  name: incident-reader
  allow:
    mcp:
      - servers: [k8s]
        tools: ["read_*", "get_*"]
    llm:
      - models: ["gpt-4.1*"]
    db:
      - databases: [orders]
        users: [readonly]
        statements: [select]
  deny:
    mcp:
      - servers: ["*"]
        tools: [kubectl_exec]
  require_approval:
    mcp:
      - servers: [k8s]
        tools: [rollback]
        conditions: 'context.args has namespace && context.args.namespace == "prod"'

Reference: docs/policy.md.

Examples:
  mandate roles apply -f roles/incident-reader.yaml
  cat roles/*.yaml | mandate roles apply -f -
`;

export function registerRoles(program: Command, io: Io): void {
  const roles = program
    .command("roles")
    .description("Roles: what agents and people may reach (MCP tools, models, databases, delegation), in YAML")
    .addHelpText("after", "\nAn agent's access is the intersection of its roles, its delegator's roles, the delegation's scope and the runtime allow-list (`mandate allowlist`). Deny always wins.");

  adminOptions(
    roles
      .command("apply")
      .description("Create or replace roles from YAML (a file, or - for stdin)")
      .requiredOption("-f, --file <file>", "YAML file with one or more role documents, or - to read stdin")
      .addHelpText("after", ROLE_EXAMPLE),
  ).action(async (opts: { file: string }, cmd: Command) => {
    const { text, origin } = await readRoleInput(opts.file);
    await withAdminClient(cmd, async (client, g) => {
      const result = await client.request<ApplyResult & { revision: string }>("POST", "/v1/roles", { yaml: text, origin });
      if (g.format === "json") return printJson(io, result);
      for (const name of result.created) io.out(`role ${name} created`);
      for (const name of result.updated) io.out(`role ${name} updated`);
      for (const name of result.unchanged) io.out(`role ${name} unchanged`);
      io.out(`(policy revision ${result.revision}; every control plane enforces it within a second)`);
    });
  });

  roles
    .command("validate")
    .description("Check role documents without a control plane (for CI): the same validation apply does")
    .requiredOption("-f, --file <file>", "YAML file with one or more role documents, or - to read stdin")
    .addOption(new Option("--format <format>", "output format").choices(["table", "json"]))
    .addHelpText("after", "\nExit status 0 when every document is valid, 1 (with file:line: reason) when one is not.\n\nExample:\n  mandate roles validate -f roles/ci.yaml")
    .action(async (opts: { file: string; format?: string }) => {
      const { text, origin } = await readRoleInput(opts.file);
      const names = parseRoleDocuments(text, origin).map((role) => compileRole(role).name);
      if (opts.format === "json") printJson(io, { valid: true, roles: names });
      else io.out(`${names.length} role${names.length === 1 ? "" : "s"} valid: ${names.join(", ")}`);
    });

  adminOptions(roles.command("ls").alias("list").description("List roles")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { roles: list } = await client.request<{ roles: (Omit<StoredRole, "source"> & { problem?: string })[] }>("GET", "/v1/roles");
      if (g.format === "json") return printJson(io, list);
      printTable(io, ["NAME", "DESCRIPTION", "UPDATED", "BY"], list.map((r) => [r.name + (r.problem ? " (does not compile!)" : ""), r.description, r.updatedAt, r.updatedBy]));
    });
  });

  adminOptions(
    roles
      .command("show <name>")
      .description("Print a role's YAML, as applied")
      .addHelpText("after", "\nThe output can be edited and applied again:\n  mandate roles show sre > sre.yaml && $EDITOR sre.yaml && mandate roles apply -f sre.yaml"),
  ).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { role } = await client.request<{ role: StoredRole }>("GET", `/v1/roles/${encodeURIComponent(name)}`);
      if (g.format === "json") return printJson(io, role);
      io.out(role.source);
    });
  });

  adminOptions(
    roles
      .command("rm <name>")
      .alias("remove")
      .description("Remove a role (agents and people that name it lose what it allowed, and what it denied)"),
  ).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const result = await client.request<{ role: { name: string }; revision: string }>("DELETE", `/v1/roles/${encodeURIComponent(name)}`);
      if (g.format === "json") return printJson(io, result);
      io.out(`role ${name} removed`);
    });
  });

  registerAllowlist(program, io);
}

function registerAllowlist(program: Command, io: Io): void {
  const allowlist = program
    .command("allowlist")
    .description("The runtime allow-list: deployment-wide resource globs every decision must pass, and an emergency deny list")
    .addHelpText(
      "after",
      `
Patterns are canonical resource globs: mcp:<server>/<tool>, llm:<model>, db:<database>/<class>,
delegate:<agent>; "*" stays within a segment, "**" crosses "/".
With no allow entries everything is allowed (roles and delegations still apply). Add one and
only what the allow entries match can be reached. Deny entries win over everything.

Examples:
  mandate allowlist add 'mcp:**' && mandate allowlist add 'llm:gpt-4.1*'
  mandate allowlist add 'mcp:*/kubectl_exec' --deny --reason 'incident 4711'
  mandate allowlist rm 'mcp:*/kubectl_exec' --deny`,
    );

  const printList = (g: { format: string }, body: { entries: RuntimeEntry[]; effective: { allow: string[]; deny: string[] } }) => {
    if (g.format === "json") return printJson(io, body);
    if (!body.entries.some((e) => e.effect === "allow")) io.out("allow: everything (no allow entries)");
    printTable(io, ["EFFECT", "PATTERN", "REASON", "ADDED", "BY"], body.entries.map((e) => [e.effect, e.pattern, e.reason, e.createdAt, e.createdBy]));
  };

  adminOptions(allowlist.command("ls").alias("list").description("Show the allow-list and the deny list")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => printList(g, await client.request("GET", "/v1/allowlist")));
  });

  adminOptions(
    allowlist
      .command("add <pattern>")
      .description("Add a pattern to the allow-list (or, with --deny, to the emergency deny list)")
      .option("--deny", "block the pattern everywhere, whatever roles and delegations say")
      .option("--reason <text>", "why; recorded with the entry and in the audit log"),
  ).action(async (pattern: string, opts: { deny?: boolean; reason?: string }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const body = await client.request<{ entries: RuntimeEntry[]; effective: { allow: string[]; deny: string[] } }>("POST", "/v1/allowlist", {
        pattern,
        effect: opts.deny ? "deny" : "allow",
        ...(opts.reason ? { reason: opts.reason } : {}),
      });
      if (g.format !== "json") io.out(`${pattern} added to the ${opts.deny ? "deny list" : "allow-list"}`);
      else printList(g, body);
    });
  });

  adminOptions(
    allowlist
      .command("rm <pattern>")
      .alias("remove")
      .description("Remove a pattern from the allow-list (or, with --deny, from the deny list)")
      .option("--deny", "remove from the deny list"),
  ).action(async (pattern: string, opts: { deny?: boolean }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const query = new URLSearchParams({ pattern, effect: opts.deny ? "deny" : "allow" });
      const body = await client.request<{ entries: RuntimeEntry[]; effective: { allow: string[]; deny: string[] } }>("DELETE", `/v1/allowlist?${query}`);
      if (g.format !== "json") io.out(`${pattern} removed from the ${opts.deny ? "deny list" : "allow-list"}`);
      else printList(g, body);
    });
  });
}
