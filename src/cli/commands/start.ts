import type { Command } from "commander";
import { MandateError } from "../../errors/index.js";
import { DEFAULT_DB_LISTEN } from "../../db/index.js";
import { startControlPlane } from "../../server/index.js";
import { defaultDataDir } from "../admin-client.js";
import { formatDuration, parseDuration } from "../duration.js";
import type { Io } from "../output.js";

export function registerStart(program: Command, io: Io, context: { setRunning: (stop: () => Promise<void>) => void }): void {
  program
    .command("start")
    .description("Start the control plane: CA, identity issuance, bundle endpoint and API on one HTTPS listener")
    .option("--data-dir <dir>", "where keys and the embedded database live (env MANDATE_DATA_DIR)", undefined)
    .option("--storage <url>", "postgres://user@host:5432/db to share state between control planes (default: SQLite in --data-dir)")
    .option("--trust-domain <name>", "trust domain created on first start (default: mandate.local)")
    .option("--listen <host:port>", "HTTPS listen address", "127.0.0.1:7443")
    .option("--public-addr <host[:port]...>", "address(es) clients dial; added to the server certificate")
    .option("--proxy-audience <aud...>", "extra JWT-SVID audience(s) the proxies accept (the server's SPIFFE ID and URLs always are)")
    .option("--svid-ttl <duration>", "X509-SVID lifetime", "1h")
    .option("--jwt-ttl <duration>", "default JWT-SVID lifetime", "5m")
    .option("--join-token-ttl <duration>", "default join token lifetime", "30m")
    .option("--user-cert-ttl <duration>", "default lifetime of the user certificate `mandate login` gives", "8h")
    .option("--user-cert-max-ttl <duration>", "the longest `mandate login --ttl` may ask for", "12h")
    .option("--log-level <level>", "fatal|error|warn|info|debug", "warn")
    .option("--audit-retention <duration>", "prune audit events older than this (e.g. 90d), up to the last signed checkpoint")
    .option("--audit-export-dir <dir>", "also write the audit log as rotating JSON Lines files here")
    .option("--audit-webhook <url>", "also POST audit batches to this SIEM endpoint (at least once, Idempotency-Key per batch)")
    .option("--llm-config <file>", "LLM proxy configuration (YAML: providers, models, limits, budgets, guardrails; see docs/llm.md)")
    .option("--redis <url>", "redis://host:6379 shared by replicas for LLM rate limits and budgets (default: in memory)")
    .option("--db-listen <host:port|off>", "the database proxy's PostgreSQL listener (default 127.0.0.1:7432; off to disable)")
    .option("--db-keep-literals", "keep literal values in audited SQL (default: replaced by $n)")
    .option("--db-audit-durability <mode>", "all: every statement waits until its audit intent is on disk (default); writes: reads run once journaled and reach the disk within 5 ms (a power loss can lose the last 5 ms of read records), anything else waits")
    .option("--audit-hash-fields <paths>", "comma-separated event fields stored as keyed HMACs, e.g. details.prompt (check a value with `mandate audit hash`)")
    .addHelpText(
      "after",
      `
On first start this creates the trust domain, a root and an intermediate CA (ECDSA P-256),
a JWT signing key and a local admin identity in the data directory; later starts reuse them.

Examples:
  mandate start
  mandate start --data-dir /var/lib/mandate --listen 0.0.0.0:7443 --public-addr mandate.example.com
  mandate start --storage postgres://mandate@db:5432/mandate --data-dir /var/lib/mandate
  mandate start --llm-config mandate-llm.yaml --redis redis://127.0.0.1:6379`,
    )
    .action(async (opts: Record<string, string | string[] | undefined>) => {
      const dataDir = defaultDataDir(opts.dataDir as string | undefined);
      const svidTtlMs = parseDuration(opts.svidTtl as string, "--svid-ttl");
      const plane = await startControlPlane({
        dataDir,
        storage: (opts.storage as string | undefined) ?? process.env.MANDATE_STORAGE,
        trustDomain: opts.trustDomain as string,
        listen: opts.listen as string,
        publicAddrs: (opts.publicAddr as string[] | undefined) ?? [],
        proxyAudiences: (opts.proxyAudience as string[] | undefined) ?? [],
        svidTtlMs,
        jwtTtlMs: parseDuration(opts.jwtTtl as string, "--jwt-ttl"),
        joinTokenTtlMs: parseDuration(opts.joinTokenTtl as string, "--join-token-ttl"),
        users: userCertificateLifetimes(opts.userCertTtl as string, opts.userCertMaxTtl as string),
        logLevel: opts.logLevel as string,
        auditExportDir: opts.auditExportDir as string | undefined,
        auditRetentionMs: opts.auditRetention ? parseDuration(opts.auditRetention as string, "--audit-retention") : undefined,
        auditWebhook: opts.auditWebhook as string | undefined,
        auditHashedFields: ((opts.auditHashFields as string | undefined) ?? "").split(",").map((f) => f.trim()).filter(Boolean),
        llm: { configPath: opts.llmConfig as string | undefined, redis: (opts.redis as string | undefined) ?? process.env.MANDATE_REDIS },
        db: { listen: (opts.dbListen as string | undefined) ?? DEFAULT_DB_LISTEN, optional: opts.dbListen === undefined, keepLiterals: Boolean(opts.dbKeepLiterals), auditDurability: parseDurability(opts.dbAuditDurability as string | undefined) },
      });
      context.setRunning(() => plane.close());
      const { authority, store } = plane.context;
      const dataFlag = opts.dataDir || process.env.MANDATE_DATA_DIR ? ` --data-dir ${dataDir}` : "";
      io.out(
        [
          `Mandate control plane ${plane.created ? "initialized" : "started"}.`,
          `  trust domain    ${authority.trustDomain}${plane.created ? " (created)" : " (existing)"}`,
          `  listening on    ${plane.url}${plane.publicUrl !== plane.url ? ` (agents dial ${plane.publicUrl})` : ""}`,
          `  database proxy  ${plane.context.db?.port ? `postgres on port ${plane.context.db.port} (TLS + X509-SVID; mandate db add / db connect)` : "off"}`,
          `  data            ${store.kind === "sqlite" ? store.location : `${dataDir} + ${store.location}`}`,
          `  CA pin          ${authority.caPin}`,
          `  admin identity  ${plane.adminIdentityPath}`,
          `  X509-SVID TTL   ${formatDuration(svidTtlMs)}`,
          "",
          "Next, register an agent and join it from its host:",
          `  mandate agents add deploy-auditor --role incident-reader${dataFlag}`,
          `  mandate daemon --auth-server ${plane.publicUrl} --join-token <token> --out ./agent-creds --oneshot`,
          "",
          "Press Ctrl-C to stop.",
        ].join("\n"),
      );
    });
}

function parseDurability(value: string | undefined): "all" | "writes" | undefined {
  if (value === undefined || value === "all" || value === "writes") return value;
  throw new MandateError("INVALID_ARGUMENT", `--db-audit-durability must be writes or all, not ${JSON.stringify(value)}`);
}

function userCertificateLifetimes(ttl: string, maxTtl: string): { certTtlMs: number; certMaxTtlMs: number } {
  const certTtlMs = parseDuration(ttl, "--user-cert-ttl");
  const certMaxTtlMs = parseDuration(maxTtl, "--user-cert-max-ttl");
  if (certTtlMs > certMaxTtlMs) throw new MandateError("INVALID_ARGUMENT", "--user-cert-ttl is longer than --user-cert-max-ttl");
  return { certTtlMs, certMaxTtlMs };
}
