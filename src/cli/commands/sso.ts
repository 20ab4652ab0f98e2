import type { Command } from "commander";
import { MandateError } from "../../errors/index.js";
import type { SsoProvider } from "../../users/index.js";
import { type Io, printJson, printTable } from "../output.js";
import { adminOptions, withAdminClient } from "./shared.js";

const collect = (value: string, previous: string[] = []) => [...previous, value];

/** `--role-map group=role[,role…]`, repeatable: a group may map to several roles, several groups to one. */
export function parseRoleMap(values: string[] | undefined): Record<string, string[]> {
  const map: Record<string, string[]> = {};
  for (const value of values ?? []) {
    const index = value.lastIndexOf("=");
    if (index <= 0 || index === value.length - 1) throw new MandateError("INVALID_ARGUMENT", `invalid --role-map ${JSON.stringify(value)}: use group=role (group names may contain '='; the last one separates)`);
    const group = value.slice(0, index);
    const roles = value
      .slice(index + 1)
      .split(",")
      .map((r) => r.trim())
      .filter(Boolean);
    map[group] = [...new Set([...(map[group] ?? []), ...roles])];
  }
  return map;
}

export function registerSso(program: Command, io: Io): void {
  const sso = program.command("sso").description("OIDC providers people log in through (`mandate login --sso NAME`)");

  adminOptions(
    sso
      .command("add <name>")
      .description("Add an OIDC provider (authorization code flow with PKCE; discovery is checked now)")
      .requiredOption("--issuer <url>", "the provider's issuer URL (its discovery document is at <issuer>/.well-known/openid-configuration)")
      .requiredOption("--client-id <id>", "the client registered at the provider for Mandate")
      .option("--client-secret-env <VAR>", "environment variable of the control plane holding the client secret (confidential clients); the secret is never sent to or stored by Mandate")
      .option("--scopes <scope,...>", "scopes to request", "openid,profile,email")
      .option("--claim-username <claim>", "claim naming the user (falls back to email for preferred_username)", "preferred_username")
      .option("--claim-roles <claim>", "claim holding the user's groups, e.g. groups")
      .option("--role-map <group=role>", "map a provider group to Mandate role(s) (repeatable)", collect)
      .option("--allow-email-domain <domain>", "only admit verified emails in this domain (repeatable)", collect)
      .addHelpText(
        "after",
        `
Register Mandate at the provider as a native/public client (or a confidential one with
--client-secret-env) with the redirect URI http://127.0.0.1/callback; the CLI listens on
a random loopback port, which providers accept for native clients (RFC 8252).
Users are created at their first login, with the roles their groups map to; at every
login their roles follow the provider again.

Examples:
  mandate sso add okta --issuer https://example.okta.com --client-id 0oa1b2c3 \\
    --claim-roles groups --role-map platform-sre=sre --role-map auditors=auditor --allow-email-domain example.com
  mandate sso add google --issuer https://accounts.google.com --client-id 123.apps.googleusercontent.com \\
    --client-secret-env GOOGLE_CLIENT_SECRET --claim-username email --allow-email-domain example.com`,
      ),
  ).action(
    async (
      name: string,
      opts: { issuer: string; clientId: string; clientSecretEnv?: string; scopes: string; claimUsername: string; claimRoles?: string; roleMap?: string[]; allowEmailDomain?: string[] },
      cmd: Command,
    ) => {
      await withAdminClient(cmd, async (client, g) => {
        const { provider } = await client.request<{ provider: SsoProvider }>("POST", "/v1/sso/providers", {
          name,
          issuer: opts.issuer,
          clientId: opts.clientId,
          ...(opts.clientSecretEnv ? { clientSecretEnv: opts.clientSecretEnv } : {}),
          scopes: opts.scopes.split(/[\s,]+/).filter(Boolean),
          claimUsername: opts.claimUsername,
          ...(opts.claimRoles ? { claimRoles: opts.claimRoles } : {}),
          roleMap: parseRoleMap(opts.roleMap),
          allowedEmailDomains: opts.allowEmailDomain ?? [],
        });
        if (g.format === "json") return printJson(io, provider);
        io.out(`SSO provider ${provider.name} added (issuer ${provider.issuer}). People log in with:\n  mandate login --auth-server <url> --sso ${provider.name}`);
      });
    },
  );

  adminOptions(sso.command("ls").alias("list").description("List SSO providers")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { providers } = await client.request<{ providers: SsoProvider[] }>("GET", "/v1/sso/providers");
      if (g.format === "json") return printJson(io, providers);
      printTable(
        io,
        ["NAME", "ISSUER", "CLIENT ID", "ROLES FROM", "ROLE MAP", "EMAIL DOMAINS"],
        providers.map((p) => [p.name, p.issuer, p.clientId, p.claimRoles ?? "-", Object.entries(p.roleMap).map(([g, r]) => `${g}=${r.join("+")}`).join(",") || "-", p.allowedEmailDomains.join(",") || "any"]),
      );
    });
  });

  adminOptions(sso.command("rm <name>").alias("remove").description("Remove an SSO provider (its users stay, but cannot log in through it)")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { provider } = await client.request<{ provider: SsoProvider }>("DELETE", `/v1/sso/providers/${encodeURIComponent(name)}`);
      if (g.format === "json") return printJson(io, provider);
      io.out(`Removed SSO provider ${provider.name}.`);
    });
  });
}
