import { readFile } from "node:fs/promises";
import { type Command, Option } from "commander";
import { MandateError } from "../../errors/index.js";
import { type ClaimCondition, type JoinRule, parseAllow } from "../../join/index.js";
import { type Io, printJson, printTable } from "../output.js";
import { adminOptions, withAdminClient } from "./shared.js";

const collect = (value: string, previous: string[] = []) => [...previous, value];
const describeAllow = (allow: ClaimCondition[]) => allow.map((c) => Object.entries(c).map(([k, v]) => `${k}=${v}`).join(",")).join(" | ");

const JOIN_COMMAND: Record<JoinRule["method"], string> = {
  kubernetes: "--join-method kubernetes --token-file /var/run/secrets/tokens/mandate",
  github: "--join-method github --token-file $RUNNER_TEMP/mandate-token",
  oidc: "--join-method oidc --token-env MANDATE_ID_TOKEN",
};

export function registerJoins(program: Command, io: Io): void {
  const joins = program.command("joins").description("Join rules: let Kubernetes service accounts or CI jobs join as an agent with their own OIDC token, no join token needed");

  adminOptions(
    joins
      .command("add")
      .description("Add a join rule")
      .addOption(new Option("--method <method>", "kind of token").choices(["kubernetes", "github", "oidc"]).makeOptionMandatory())
      .requiredOption("--agent <name>", "the agent a matching token joins as")
      .option("--issuer <url>", "the tokens' iss claim (github: defaults to https://token.actions.githubusercontent.com)")
      .requiredOption("--audience <aud>", "the audience the token must be minted for (e.g. mandate)")
      .option("--jwks-file <path>", "the issuer's public keys as a JWKS file (kubectl get --raw /openid/v1/jwks)")
      .option("--jwks-url <url>", "fetch the issuer's keys from this URL")
      .option("--allow <claim=glob,...>", "claims a token must carry; claims in one --allow must all match, several --allow are alternatives", collect)
      .addHelpText(
        "after",
        `
Without --jwks-file or --jwks-url the keys come from the issuer's OIDC discovery document.
Globs: * matches anything, ? one character. Claim keys:
  kubernetes  namespace (required), service_account, service_account_uid, pod, node
  github      repository or repository_owner (one required), ref, ref_type, workflow, workflow_ref,
              job_workflow_ref, environment, event_name, actor, sub, … (any claim GitHub sets)
  oidc        any claim, dotted paths for nested ones (GitLab: project_path, ref, ref_protected, environment…)

Examples:
  kubectl get --raw /openid/v1/jwks > cluster-jwks.json
  mandate joins add --method kubernetes --agent deploy-auditor --issuer https://kubernetes.default.svc.cluster.local \\
    --jwks-file cluster-jwks.json --audience mandate --allow namespace=checkout,service_account=auditor
  mandate joins add --method github --agent release-bot --audience mandate \\
    --allow repository=acme/shop,ref=refs/heads/main,environment=production
  mandate joins add --method oidc --agent ci-deployer --issuer https://gitlab.com --audience mandate \\
    --allow 'project_path=acme/*,ref_protected=true'`,
      ),
  ).action(async (opts: { method: JoinRule["method"]; agent: string; issuer?: string; audience: string; jwksFile?: string; jwksUrl?: string; allow?: string[] }, cmd: Command) => {
    let jwks: unknown;
    if (opts.jwksFile) {
      try {
        jwks = JSON.parse(await readFile(opts.jwksFile, "utf8"));
      } catch (error) {
        throw new MandateError("INVALID_ARGUMENT", `cannot read a JWKS from ${opts.jwksFile}: ${(error as Error).message}`);
      }
    }
    const allow = (opts.allow ?? []).map(parseAllow);
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<{ rule: JoinRule; caPin: string; authServer: string }>("POST", "/v1/join-rules", {
        method: opts.method,
        agent: opts.agent,
        ...(opts.issuer ? { issuer: opts.issuer } : {}),
        audience: opts.audience,
        ...(jwks === undefined ? {} : { jwks }),
        ...(opts.jwksUrl ? { jwksUrl: opts.jwksUrl } : {}),
        allow,
      });
      if (g.format === "json") return printJson(io, response);
      const { rule } = response;
      io.out(
        [
          `Join rule ${rule.id}: ${rule.method} tokens from ${rule.issuer} for audience ${rule.audience} join as ${rule.agent} when ${describeAllow(rule.allow)}.`,
          "",
          "On the workload's host run:",
          `  mandate daemon --auth-server ${response.authServer} --ca-pin ${response.caPin} ${JOIN_COMMAND[rule.method]} --data-dir /run/mandate`,
        ].join("\n"),
      );
    });
  });

  adminOptions(joins.command("ls").alias("list").description("List join rules")).action(async (_opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const { rules } = await client.request<{ rules: JoinRule[] }>("GET", "/v1/join-rules");
      if (g.format === "json") printJson(io, rules);
      else printTable(io, ["ID", "METHOD", "AGENT", "ISSUER", "AUDIENCE", "KEYS", "ALLOW"], rules.map((r) => [r.id, r.method, r.agent, r.issuer, r.audience, r.jwks ? "inline" : (r.jwksUrl ?? "discovery"), describeAllow(r.allow)]));
    });
  });

  adminOptions(joins.command("rm <id>").alias("remove").description("Remove a join rule (instances that joined through it keep renewing; lock them to stop them)")).action(async (id: string, _opts: unknown, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const response = await client.request<{ rule: JoinRule }>("DELETE", `/v1/join-rules/${encodeURIComponent(id)}`);
      if (g.format === "json") printJson(io, response);
      else io.out(`Join rule ${id} removed.`);
    });
  });
}
