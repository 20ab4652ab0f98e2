import { rm } from "node:fs/promises";
import { userInfo } from "node:os";
import { type Command, Option } from "commander";
import { generateKeyAndCsr } from "../../agent/csr.js";
import { MandateClient, parseServerUrl } from "../../client/http-client.js";
import { type IdentityFile, writeIdentityFile } from "../../client/identity-file.js";
import { fetchPinnedRoot } from "../../client/pinned-bootstrap.js";
import { MandateError } from "../../errors/index.js";
import { certToPem } from "../../identity/index.js";
import type { User, UserCredential } from "../../users/index.js";
import { parseDuration } from "../duration.js";
import { type Io, printJson } from "../output.js";
import { secretInput } from "../secret-input.js";
import { readUserIdentity, userIdentityPath, withUserClient } from "../user-client.js";
import { loginWithSso } from "./sso-login.js";

interface LoginOptions {
  authServer?: string;
  user?: string;
  caPin?: string;
  passwordStdin?: boolean;
  totp?: string;
  ttl?: string;
  identity?: string;
  sso?: string;
  browser: boolean;
  format?: string;
}

/**
 * How the CLI comes to trust the control plane before it holds any credential: the CA
 * pin (first login), or the bundle of a previous login to the same server.
 */
async function trustAnchors(authServer: string, pin: string | undefined, previous: IdentityFile | undefined): Promise<{ caPem: string; caPin: string }> {
  if (pin) return { caPem: certToPem((await fetchPinnedRoot(authServer, pin)).raw), caPin: pin };
  if (previous && parseServerUrl(previous.authServer).origin === parseServerUrl(authServer).origin) return { caPem: previous.bundlePem, caPin: previous.caPin };
  throw new MandateError("INVALID_ARGUMENT", "first login to this control plane: pass --ca-pin sha256:… (an administrator gets it from `mandate users add` or `mandate ca show`)");
}

export async function saveCredential(path: string, authServer: string, keyPem: string, credential: UserCredential): Promise<IdentityFile> {
  const identity: IdentityFile = {
    kind: "mandate-identity",
    version: 1,
    spiffeId: credential.spiffeId,
    authServer: parseServerUrl(authServer).origin,
    certPem: credential.certPem,
    keyPem,
    bundlePem: credential.bundlePem,
    caPin: credential.caPin,
    expiresAt: credential.expiresAt,
  };
  await writeIdentityFile(path, identity);
  return identity;
}

function printLoggedIn(io: Io, format: string | undefined, path: string, credential: UserCredential): void {
  if (format === "json") return printJson(io, { spiffeId: credential.spiffeId, user: credential.user, serial: credential.serial, expiresAt: credential.expiresAt, identity: path });
  io.out(
    [
      `Logged in as ${credential.user.name} (${credential.spiffeId}).`,
      `roles      ${credential.user.roles.join(", ") || "none"}`,
      `expires    ${credential.expiresAt}`,
      `identity   ${path}`,
    ].join("\n"),
  );
}

export function registerLogin(program: Command, io: Io): void {
  program
    .command("login")
    .description("Log in as a person: get a short-lived user certificate (spiffe://<td>/user/<name>), kept in ~/.mandate/identity.json")
    .option("--auth-server <url>", "control plane address, https://HOST:PORT (default: the one of your last login)")
    .option("--user <name>", "local user name (default: your OS user name)")
    .option("--ca-pin <sha256:hex>", "the control plane's CA pin; needed at the first login to a server")
    .option("--password-stdin", "read the password from stdin (scripts); otherwise you are prompted")
    .option("--totp <code>", "the current TOTP code (scripts); otherwise you are prompted")
    .option("--sso <provider>", "log in through an OIDC provider configured with `mandate sso add` instead of a local password")
    .option("--no-browser", "with --sso: print the login URL instead of opening a browser")
    .option("--ttl <duration>", "how long the certificate lives (default 8h; the server caps it)")
    .option("--identity <file>", "where to keep the identity (env MANDATE_IDENTITY; default $MANDATE_HOME or ~/.mandate)")
    .addOption(new Option("--format <format>", "output format").choices(["table", "json"]))
    .addHelpText(
      "after",
      `
The key pair is generated here; only a certificate request leaves this machine.

Examples:
  mandate login --auth-server https://mandate.example:7443 --ca-pin sha256:3b1f… --user alice
  mandate login --sso okta
  printf '%s\\n' "$PASSWORD" | mandate login --user ci-admin --password-stdin --totp 123456 --format json`,
    )
    .action(async (opts: LoginOptions) => {
      const path = userIdentityPath(opts.identity);
      const previous = await readUserIdentity(path).catch(() => undefined);
      const authServer = opts.authServer ?? previous?.authServer;
      if (!authServer) throw new MandateError("INVALID_ARGUMENT", "pass --auth-server https://HOST:PORT (the control plane to log in to)");
      const trust = await trustAnchors(authServer, opts.caPin, previous);
      const ttlSeconds = opts.ttl ? Math.round(parseDuration(opts.ttl, "--ttl") / 1000) : undefined;
      const { keyPem, csrPem } = await generateKeyAndCsr();
      const client = new MandateClient(authServer, { caPem: trust.caPem });
      try {
        let credential: UserCredential;
        if (opts.sso) {
          credential = await loginWithSso(io, client, { provider: opts.sso, csrPem, ttlSeconds, openBrowser: opts.browser });
        } else {
          const user = opts.user ?? userInfo().username;
          const input = secretInput();
          const password = opts.passwordStdin ? await input.readStdin("--password-stdin") : await input.promptHidden(`Password for ${user}: `);
          const totp = opts.totp ?? (await input.promptHidden("TOTP code: "));
          credential = await client.request<UserCredential>("POST", "/v1/login", { user, password, totp: totp.trim(), csr: csrPem, ...(ttlSeconds ? { ttlSeconds } : {}) });
        }
        await saveCredential(path, authServer, keyPem, credential);
        printLoggedIn(io, opts.format, path, credential);
      } finally {
        client.close();
      }
    });

  program
    .command("logout")
    .description("Log out: the server locks your certificate, and the identity file is deleted")
    .option("--identity <file>", "the identity file (default $MANDATE_IDENTITY, $MANDATE_HOME or ~/.mandate)")
    .addOption(new Option("--format <format>", "output format").choices(["table", "json"]))
    .action(async (opts: { identity?: string; format?: string }) => {
      const path = userIdentityPath(opts.identity);
      const identity = await readUserIdentity(path);
      if (!identity) throw new MandateError("NOT_FOUND", `not logged in (no identity at ${path})`);
      let locked = false;
      // An expired certificate is dead already; only a live one needs locking.
      if (new Date(identity.expiresAt).getTime() > Date.now()) {
        await withUserClient({ identity: path }, async (client) => {
          await client.request("POST", "/v1/logout", {});
          locked = true;
        });
      }
      await rm(path, { force: true });
      if (opts.format === "json") printJson(io, { spiffeId: identity.spiffeId, locked, removed: path });
      else io.out(`Logged out ${identity.spiffeId}${locked ? " (certificate locked on the server)" : ""}; removed ${path}.`);
    });

  program
    .command("whoami")
    .alias("status")
    .description("Show who you are logged in as, your roles and when the login expires (checked with the server)")
    .option("--identity <file>", "the identity file (default $MANDATE_IDENTITY, $MANDATE_HOME or ~/.mandate)")
    .option("--auth-server <url>", "control plane address (default: the identity file's)")
    .addOption(new Option("--format <format>", "output format").choices(["table", "json"]))
    .action(async (opts: { identity?: string; authServer?: string; format?: string }) => {
      await withUserClient(opts, async (client) => {
        const response = await client.request<{ user: User; spiffeId: string; serial: string; expiresAt: string }>("GET", "/v1/users/me");
        if (opts.format === "json") return printJson(io, response);
        io.out(
          [
            `user       ${response.user.name}`,
            `spiffe id  ${response.spiffeId}`,
            `roles      ${response.user.roles.join(", ") || "none"}`,
            `source     ${response.user.source === "sso" ? `sso (${response.user.ssoProvider})` : "local"}`,
            `serial     ${response.serial}`,
            `expires    ${response.expiresAt}`,
            `server     ${client.baseUrl.origin}`,
          ].join("\n"),
        );
      });
    });
}
