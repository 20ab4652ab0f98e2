import type { Command } from "commander";
import { MandateError } from "../../errors/index.js";
import type { Lock } from "../../identity/index.js";
import type { EnrolmentSecrets, User } from "../../users/index.js";
import { type Io, printJson, printTable } from "../output.js";
import { secretInput } from "../secret-input.js";
import { parseLabels } from "./agents.js";
import { adminOptions, withAdminClient } from "./shared.js";

const splitRoles = (value: string | undefined): string[] | undefined =>
  value === undefined
    ? undefined
    : value
        .split(",")
        .map((r) => r.trim())
        .filter(Boolean);

const collect = (value: string, previous: string[] = []) => [...previous, value];

function printSecrets(io: Io, name: string, secrets: EnrolmentSecrets): void {
  const lines: string[] = [];
  if (secrets.password) lines.push(`One-time password (shown once; give it to ${name} over a trusted channel):`, "", `  ${secrets.password}`, "");
  if (secrets.totp) {
    lines.push(
      "TOTP enrolment (shown once): scan or paste into an authenticator app",
      "",
      `  ${secrets.totp.uri}`,
      "",
      `  secret (base32): ${secrets.totp.secret}`,
      "",
    );
  }
  if (lines.length) io.out(lines.join("\n"));
}

function describe(user: User): string {
  return [
    `name        ${user.name}`,
    `spiffe id   ${user.spiffeId}`,
    `roles       ${user.roles.join(", ") || "-"}`,
    `labels      ${Object.entries(user.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "-"}`,
    `source      ${user.source === "sso" ? `sso (${user.ssoProvider})` : "local (password + TOTP)"}`,
    ...(user.email ? [`email       ${user.email}`] : []),
    `disabled    ${user.disabled ? "yes" : "no"}`,
    `created     ${user.createdAt} by ${user.createdBy}`,
    `updated     ${user.updatedAt}`,
    `last login  ${user.lastLoginAt ?? "never"}`,
  ].join("\n");
}

export function registerUsers(program: Command, io: Io): void {
  const users = program.command("users").description("People who log in with `mandate login`: local users (password + TOTP) and users from SSO");

  adminOptions(
    users
      .command("add <name>")
      .description("Create a local user; prints a one-time password (unless --password-stdin) and the TOTP enrolment, once")
      .option("--roles <role,...>", "roles the user holds, comma-separated")
      .option("--labels <k=v,...>", "labels, e.g. team=sre (repeatable)", collect)
      .option("--password-stdin", "read the initial password from stdin instead of generating one")
      .addHelpText(
        "after",
        `
The TOTP secret is shown once, as an otpauth:// URI (paste it into any authenticator app
or turn it into a QR code) and as base32. The user then logs in with
  mandate login --auth-server <url> --ca-pin <pin> --user <name>

Examples:
  mandate users add alice --roles sre,oncall --labels team=payments
  printf '%s' "$INITIAL_PASSWORD" | mandate users add bob --roles viewer --password-stdin --format json`,
      ),
  ).action(async (name: string, opts: { roles?: string; labels?: string[]; passwordStdin?: boolean }, cmd: Command) => {
    const password = opts.passwordStdin ? await secretInput().readStdin("--password-stdin") : undefined;
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<{ user: User; caPin: string; authServer: string } & EnrolmentSecrets>("POST", "/v1/users", {
        name,
        roles: splitRoles(opts.roles) ?? [],
        labels: parseLabels(opts.labels),
        ...(password !== undefined ? { password } : {}),
      });
      if (g.format === "json") return printJson(io, response);
      io.out(`User ${response.user.name} created as ${response.user.spiffeId} (roles: ${response.user.roles.join(", ") || "none"}).\n`);
      printSecrets(io, name, response);
      io.out(`To log in:\n  mandate login --auth-server ${response.authServer} --ca-pin ${response.caPin} --user ${name}`);
    });
  });

  adminOptions(users.command("ls").alias("list").description("List users")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { users: list } = await client.request<{ users: User[] }>("GET", "/v1/users");
      if (g.format === "json") return printJson(io, list);
      printTable(
        io,
        ["NAME", "ROLES", "SOURCE", "DISABLED", "LAST LOGIN", "CREATED"],
        list.map((u) => [u.name, u.roles.join(",") || "-", u.source === "sso" ? `sso:${u.ssoProvider}` : "local", u.disabled ? "yes" : "no", u.lastLoginAt ?? "never", u.createdAt]),
      );
    });
  });

  adminOptions(users.command("show <name>").description("Show a user and the certificates it holds now")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<{ user: User; certificates: { serial: string; issuedAt: string; expiresAt: string; locked: boolean }[] }>("GET", `/v1/users/${encodeURIComponent(name)}`);
      if (g.format === "json") return printJson(io, response);
      io.out(`${describe(response.user)}\n\nlive certificates:`);
      printTable(io, ["SERIAL", "ISSUED", "EXPIRES", "LOCKED"], response.certificates.map((c) => [c.serial, c.issuedAt, c.expiresAt, c.locked ? "yes" : "no"]));
    });
  });

  adminOptions(
    users
      .command("update <name>")
      .description("Change a user's roles or labels, reset its password or TOTP, disable or enable it")
      .option("--roles <role,...>", "the new role set, comma-separated (empty string for none)")
      .option("--labels <k=v,...>", "the new label set (repeatable)", collect)
      .option("--reset-password", "set a new password: generated and shown once, or read with --password-stdin")
      .option("--password-stdin", "with --reset-password: read the new password from stdin")
      .option("--reset-totp", "enrol a new TOTP secret (shown once); the old one stops working")
      .option("--disable", "refuse new logins and lock the certificates the user holds now")
      .option("--enable", "allow logins again")
      .addHelpText("after", "\nExamples:\n  mandate users update alice --roles sre,approver\n  mandate users update alice --reset-totp\n  mandate users update bob --disable"),
  ).action(
    async (name: string, opts: { roles?: string; labels?: string[]; resetPassword?: boolean; passwordStdin?: boolean; resetTotp?: boolean; disable?: boolean; enable?: boolean }, cmd: Command) => {
      if (opts.disable && opts.enable) throw new MandateError("INVALID_ARGUMENT", "--disable and --enable contradict each other");
      if (opts.passwordStdin && !opts.resetPassword) throw new MandateError("INVALID_ARGUMENT", "--password-stdin goes with --reset-password");
      const change = {
        ...(opts.roles !== undefined ? { roles: splitRoles(opts.roles) } : {}),
        ...(opts.labels ? { labels: parseLabels(opts.labels) } : {}),
        ...(opts.disable ? { disabled: true } : opts.enable ? { disabled: false } : {}),
        ...(opts.resetPassword ? { resetPassword: opts.passwordStdin ? await secretInput().readStdin("--password-stdin") : true } : {}),
        ...(opts.resetTotp ? { resetTotp: true } : {}),
      };
      if (Object.keys(change).length === 0) throw new MandateError("INVALID_ARGUMENT", "nothing to change: give --roles, --labels, --reset-password, --reset-totp, --disable or --enable");
      await withAdminClient(cmd, async (client, g) => {
        const response = await client.request<{ user: User; locks: Lock[] } & EnrolmentSecrets>("PATCH", `/v1/users/${encodeURIComponent(name)}`, change);
        if (g.format === "json") return printJson(io, response);
        io.out(`${describe(response.user)}\n`);
        if (response.locks.length) io.out(`Locked ${response.locks.length} live certificate(s).`);
        printSecrets(io, name, response);
      });
    },
  );

  adminOptions(users.command("rm <name>").alias("remove").description("Remove a user; the certificates it holds are locked at once")).action(async (name: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<{ user: User; locks: Lock[] }>("DELETE", `/v1/users/${encodeURIComponent(name)}`);
      if (g.format === "json") return printJson(io, response);
      io.out(`Removed user ${name}${response.locks.length ? `; locked ${response.locks.length} live certificate(s)` : ""}.`);
    });
  });
}
