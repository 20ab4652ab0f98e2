import { request as httpsRequest } from "node:https";
import { type Command, Option } from "commander";
import { readCredentials } from "../../agent/index.js";
import { MandateError } from "../../errors/index.js";
import { type Io, printJson, printTable } from "../output.js";
import { callerOptions, describeGrant, withCallerClient } from "./delegate.js";

const TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt";

interface TokenResponse {
  access_token: string;
  issued_token_type: string;
  token_type: string;
  expires_in: number;
}

/** RFC 8693 token exchange over the agent's mTLS connection, form-encoded as the RFC says. */
async function exchangeToken(dir: string, params: Record<string, string>, authServer?: string): Promise<TokenResponse> {
  const credentials = await readCredentials(dir);
  if (!credentials) throw new MandateError("UNAUTHENTICATED", `no agent credentials in ${dir}; run \`mandate daemon --out ${dir}\` first`);
  const body = new URLSearchParams({ grant_type: TOKEN_EXCHANGE, requested_token_type: JWT_TYPE, ...params }).toString();
  const url = new URL("/v1/token", authServer ?? credentials.state.authServer);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: "POST", ca: credentials.bundlePem, cert: credentials.svidPem, key: credentials.keyPem, headers: { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body) }, timeout: 15_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        let json: Record<string, unknown>;
        try {
          json = JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>;
        } catch {
          reject(new MandateError("CONNECTION_FAILED", `the token endpoint answered HTTP ${res.statusCode} with a body that is not JSON`));
          return;
        }
        if ((res.statusCode ?? 500) >= 400) {
          const code = json.error === "invalid_grant" ? "DELEGATION_INVALID" : json.error === "invalid_target" || json.error === "invalid_request" ? "INVALID_ARGUMENT" : "UNAUTHENTICATED";
          reject(new MandateError(code, `token exchange refused (${String(json.error)}): ${String(json.error_description ?? "")}`, { details: { error: json.error } }));
        } else resolve(json as unknown as TokenResponse);
      });
    });
    req.on("timeout", () => req.destroy(new MandateError("CONNECTION_FAILED", `no answer from ${url.origin} within 15s`)));
    req.on("error", (error) => reject(error instanceof MandateError ? error : new MandateError("CONNECTION_FAILED", `cannot reach ${url.origin}: ${error.message}`)));
    req.end(body);
  });
}

export function registerDelegations(program: Command, io: Io): void {
  const delegations = program.command("delegations").description("List, show and revoke delegations; fetch an agent's delegation token");

  callerOptions(
    delegations
      .command("ls")
      .description("List the delegations you made, hold, or (admins) all of them")
      .option("--agent <name>", "only delegations held by this agent")
      .option("--task <id>", "only this task's delegations")
      .addOption(new Option("--status <status>", "only active, expired or revoked").choices(["active", "expired", "revoked"])),
  ).action(async (opts: { agent?: string; task?: string; status?: string }, command: Command) => {
    await withCallerClient(command, async (client, options) => {
      const query = new URLSearchParams(Object.entries({ agent: opts.agent, task: opts.task, status: opts.status }).filter((e): e is [string, string] => e[1] !== undefined));
      const { delegations: list } = await client.request<{ delegations: Array<{ id: string; status: string; task: string; agent: string; delegator: string; parent: string | null; expiresAt: string }> }>("GET", `/v1/delegations${query.size ? `?${query}` : ""}`);
      if (options.format === "json") printJson(io, list);
      else printTable(io, ["ID", "STATUS", "TASK", "AGENT", "DELEGATOR", "PARENT", "EXPIRES"], list.map((g) => [g.id, g.status, g.task, g.agent, g.delegator, g.parent, g.expiresAt]));
    });
  });

  callerOptions(delegations.command("show <id>").description("Show a delegation: its chain, scope, expiry and sub-delegations")).action(async (id: string, _opts: unknown, command: Command) => {
    await withCallerClient(command, async (client, options) => {
      const { delegation } = await client.request<{ delegation: Parameters<typeof describeGrant>[0] & { children: string[] } }>("GET", `/v1/delegations/${encodeURIComponent(id)}`);
      if (options.format === "json") printJson(io, delegation);
      else io.out(`${describeGrant(delegation)}${delegation.children.length ? `\n  sub-delegations: ${delegation.children.join(" ")}` : ""}`);
    });
  });

  callerOptions(
    delegations
      .command("revoke <id>")
      .description("Revoke a delegation and every sub-delegation made under it (enforced by every control plane within a second)")
      .option("--reason <text>", "why (recorded in the audit log)", "revoked"),
  ).action(async (id: string, opts: { reason: string }, command: Command) => {
    await withCallerClient(command, async (client, options) => {
      const result = await client.request<{ revoked: string[] }>("POST", `/v1/delegations/${encodeURIComponent(id)}/revoke`, { reason: opts.reason });
      if (options.format === "json") printJson(io, result);
      else io.out(result.revoked.length ? `Revoked ${result.revoked.join(", ")}` : `Delegation ${id} was already revoked`);
    });
  });

  delegations
    .command("token")
    .description("Agents: exchange the agent's SVID for its delegation token (RFC 8693) and print it")
    .requiredOption("--credentials <dir>", "the agent's credential directory (as written by `mandate daemon --out`)")
    .option("--task <id>", "the task whose delegation to fetch")
    .option("--delegation <id>", "the delegation to fetch (instead of --task)")
    .option("--audience <aud>", "the proxy audience (default: this trust domain's proxies)")
    .option("--auth-server <url>", "the control plane to ask (default: the one in the credential directory)")
    .addOption(new Option("--format <format>", "output format: the token alone, or the token endpoint's JSON response").choices(["text", "json"]).default("text"))
    .addHelpText("after", "\nExample:\n  export MANDATE_DELEGATION=$(mandate delegations token --task investigate-checkout-deploy --credentials ./agent-creds)\n  # present it as the X-Mandate-Delegation header, or as <jwt-svid>~<token> in an API-key slot")
    .action(async (opts: { credentials: string; task?: string; delegation?: string; audience?: string; authServer?: string; format: string }) => {
      if (opts.task && opts.delegation) throw new MandateError("INVALID_ARGUMENT", "pass --task or --delegation, not both");
      const resource = opts.delegation ? `urn:mandate:delegation:${opts.delegation}` : opts.task ? `urn:mandate:task:${opts.task}` : undefined;
      const response = await exchangeToken(opts.credentials, { ...(resource ? { resource } : {}), ...(opts.audience ? { audience: opts.audience } : {}) }, opts.authServer);
      if (opts.format === "json") printJson(io, response);
      else io.out(response.access_token);
    });
}
