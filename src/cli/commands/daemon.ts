import { type Command, Option } from "commander";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { AGENT_VERSION, CredentialDirSource, type JoinMethod, agentClient, readCredentials, runDaemon, startDaemonWorkloadApi } from "../../agent/index.js";
import { MandateError } from "../../errors/index.js";
import { type Io, printJson } from "../output.js";
import { onStopSignal } from "../signals.js";

export function registerDaemon(program: Command, io: Io): void {
  program
    .command("daemon")
    .description("Run on the agent's host: join once, then keep a short-lived X509-SVID fresh in --out")
    .option("--auth-server <url>", "control plane, https://HOST:PORT (needed to join)")
    .option("--join-token <token>", "one-time join token from `mandate agents add` (env MANDATE_JOIN_TOKEN)")
    .option("--ca-pin <sha256:hex>", "expected CA pin; a join token carries it, other join methods need it (`mandate joins add` prints it)")
    .addOption(new Option("--join-method <method>", "how to join when there are no credentials yet").choices(["token", "kubernetes", "github", "oidc"]).default("token"))
    .option("--token-file <path>", "file holding the platform's OIDC token (Kubernetes projected service-account token, CI ID token); read at join time")
    .option("--token-env <name>", "environment variable holding the platform's OIDC token (GitLab CI id_tokens)")
    .option("--agent <name>", "which agent to join as, when the token matches join rules of several")
    .option("--out <dir>", "where svid.pem, svid_key.pem, bundle.pem and jwt_bundle.json are written", "./agent-creds")
    .option("--data-dir <dir>", "the daemon's state directory (credentials and state live together; same as --out)")
    .option("--socket <path>", "serve the SPIFFE Workload API on this unix socket; callers are attested against the agent's selectors")
    .option("--oneshot", "get or renew the SVID once, then exit")
    .addOption(new Option("--format <format>", "output format").choices(["text", "json"]).default("text"))
    .addHelpText(
      "after",
      `
The private key is generated here and never leaves this host; the control plane signs a CSR.
The first contact checks the server's CA against the pin before sending anything.
Later runs renew with the current SVID (mTLS); the join token is never used twice.

Without a join token, a platform-minted OIDC token can join, as a join rule allows
(\`mandate joins add\`). Each such token joins once; afterwards the daemon renews with its SVID.

Examples:
  mandate daemon --auth-server https://mandate.example.com:7443 --join-token mj1.... --out /run/mandate --oneshot
  mandate daemon --out /run/mandate          # keep renewing with the identity already in /run/mandate
  mandate daemon --auth-server https://mandate.example.com:7443 --ca-pin sha256:... \\
    --join-method kubernetes --token-file /var/run/secrets/tokens/mandate --data-dir /run/mandate --socket /run/mandate/agent.sock
  mandate daemon --auth-server https://mandate.example.com:7443 --ca-pin sha256:... --join-method oidc --token-env MANDATE_ID_TOKEN --oneshot`,
    )
    .action(async (opts: { authServer?: string; joinToken?: string; caPin?: string; joinMethod: JoinMethod; tokenFile?: string; tokenEnv?: string; agent?: string; out: string; dataDir?: string; socket?: string; oneshot?: boolean; format: string }) => {
      if (opts.tokenFile && opts.tokenEnv) throw new MandateError("INVALID_ARGUMENT", "give --token-file or --token-env, not both");
      if (opts.joinMethod !== "token" && opts.joinToken) throw new MandateError("INVALID_ARGUMENT", `--join-token is for --join-method token, not ${opts.joinMethod}`);
      const readPlatformToken = opts.tokenFile
        ? () => readFile(opts.tokenFile!, "utf8").catch((error: NodeJS.ErrnoException) => {
            throw new MandateError("INVALID_ARGUMENT", `cannot read --token-file ${opts.tokenFile}: ${error.code ?? error.message}`);
          })
        : opts.tokenEnv
          ? async () => {
              const value = process.env[opts.tokenEnv!];
              if (!value) throw new MandateError("INVALID_ARGUMENT", `environment variable ${opts.tokenEnv} (--token-env) is empty`);
              return value;
            }
          : undefined;
      if (opts.dataDir) opts.out = opts.dataDir;
      const log = (message: string) => io.err(`${new Date().toISOString()} ${message}`);
      const source = opts.socket && !opts.oneshot ? new CredentialDirSource(opts.out) : undefined;
      const workloadApi = source ? await startDaemonWorkloadApi({ socketPath: resolve(opts.socket!), source, log }) : undefined;
      if (workloadApi) io.err(`SPIFFE Workload API on ${workloadApi.server.endpoint} (SPIFFE_ENDPOINT_SOCKET=${workloadApi.server.endpoint})`);
      let announced: string | undefined;
      const refresh = async () => {
        await source?.refresh();
        const svid = source?.current()?.svids[0];
        if (!svid) return;
        const selectors = svid.selectors?.length ? svid.selectors.join(" AND ") : `unix:uid:${process.getuid?.()} (the daemon's own user: the agent has no selectors)`;
        if (selectors !== announced) log(`Workload API serves ${svid.spiffeId} to processes matching ${selectors}`);
        announced = selectors;
      };
      const controller = new AbortController();
      const removeSignalHandlers = onStopSignal(() => controller.abort());
      await runDaemon({
        outDir: opts.out,
        authServer: opts.authServer,
        joinToken: opts.joinToken ?? process.env.MANDATE_JOIN_TOKEN,
        caPin: opts.caPin,
        joinMethod: opts.joinMethod,
        readPlatformToken,
        agent: opts.agent,
        oneshot: Boolean(opts.oneshot),
        version: AGENT_VERSION,
        log: opts.oneshot && opts.format === "json" ? () => undefined : log,
        signal: controller.signal,
        onRenewed: refresh,
      }).finally(() => {
        removeSignalHandlers();
        return workloadApi?.close();
      });
      if (opts.oneshot) {
        const credentials = await readCredentials(opts.out);
        if (opts.format === "json") printJson(io, credentials?.state);
        else io.out(`Wrote ${opts.out}/svid.pem, svid_key.pem, bundle.pem, jwt_bundle.json for ${credentials?.state.spiffeId} (valid until ${credentials?.state.expiresAt}).`);
      }
    });
}

export function registerSvid(program: Command, io: Io): void {
  const svid = program.command("svid").description("Use the agent identity in a credential directory");
  svid
    .command("jwt")
    .description("Print a JWT-SVID for an audience, signed by the control plane for this agent")
    .requiredOption("--audience <aud...>", "audience(s) the token is for (repeatable)")
    .option("--ttl <seconds>", "lifetime in seconds (default: the server's, 5 minutes)")
    .option("--out <dir>", "the agent's credential directory (as given to `mandate daemon`)", "./agent-creds")
    .addOption(new Option("--format <format>", "output format").choices(["text", "json"]).default("text"))
    .addHelpText("after", "\nExample:\n  TOKEN=$(mandate svid jwt --audience mcp.example.com --out /run/mandate)")
    .action(async (opts: { audience: string[]; ttl?: string; out: string; format: string }) => {
      const credentials = await readCredentials(opts.out);
      if (!credentials) throw new MandateError("UNAUTHENTICATED", `no agent credentials in ${opts.out}; run \`mandate daemon\` first`);
      if (credentials.notAfter.getTime() <= Date.now()) throw new MandateError("UNAUTHENTICATED", `the SVID in ${opts.out} expired at ${credentials.notAfter.toISOString()}`);
      const ttlSeconds = opts.ttl === undefined ? undefined : Number(opts.ttl);
      if (ttlSeconds !== undefined && !(Number.isInteger(ttlSeconds) && ttlSeconds > 0)) throw new MandateError("INVALID_ARGUMENT", "--ttl takes a whole number of seconds");
      const client = agentClient(credentials);
      try {
        const result = await client.request<{ token: string; spiffeId: string; expiresAt: string }>("POST", "/v1/svid/jwt", { audience: opts.audience, ...(ttlSeconds ? { ttlSeconds } : {}) });
        if (opts.format === "json") printJson(io, result);
        else io.out(result.token);
      } finally {
        client.close();
      }
    });
}
