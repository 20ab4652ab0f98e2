import { constants as cryptoConstants } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { AddressInfo } from "node:net";
import Fastify, { type FastifyInstance } from "fastify";
import { AuditCheckpointer, AuditExporter, checkpointFileSink, JsonlFileSink, StoreAuditLog, WebhookSink, pruneAuditLog } from "../audit/index.js";
import { ADMIN_IDENTITY_FILE, writeIdentityFile } from "../client/identity-file.js";
import { AgentRegistry, LockRegistry, SERVER_PATH, SignatureVerifierPool, SvidService, SvidVerifier, TrustDomainAuthority, X509SvidIssuer } from "../identity/index.js";
import { type LlmConfig, LlmService, loadLlmConfigFile, parseLlmConfig, registerLlmRoutes } from "../llm/index.js";
import { Registry } from "prom-client";
import { AttestedJoinService, DEFAULT_JOIN_TOKEN_TTL_MS, JoinRuleRegistry, JoinTokenVerifier, TokenJoinService } from "../join/index.js";
import { DefinitionPins, McpCatalog, McpProxy, type ProxyLimits, registerMcpRoutes } from "../mcp/index.js";
import { registerMcpAdminRoutes } from "../mcp/admin-routes.js";
import { type AccessGate, createPolicyEngine, RoleRegistry } from "../policy/index.js";
import { registerPolicyRoutes } from "../policy/routes.js";
import { startDelegationLayer } from "../delegation/index.js";
import { Store } from "../store/index.js";
import { CallerAuthenticator } from "./authenticate.js";
import { claimDataDir } from "./data-dir-lock.js";
import type { ServerContext } from "./context.js";
import { installErrorHandling } from "./errors.js";
import { formatHostPort, parseHostPort } from "./listen-address.js";
import { registerAdminRoutes } from "./routes/admin-routes.js";
import { registerHealthRoutes } from "./routes/health-routes.js";
import { registerIdentityRoutes } from "./routes/identity-routes.js";
import { registerWorkloadRoutes } from "./routes/workload-routes.js";
import { WorkloadAuthenticator } from "./workload-auth.js";
import { type OAuthSettings, UserLoginService, UserRegistry, type UserLoginSettings, mcpCallerAuthenticator, registerOAuthRoutes, registerUserRoutes } from "../users/index.js";
import { DEFAULT_DB_PORT, DbService, openBuiltinDbServer, registerDbRoutes } from "../db/index.js";
import { callerFromTlsSocket } from "./authenticate.js";
import { registerJoinRoutes } from "./routes/join-routes.js";
import { type IssuedKeyPair, issueControlPlaneCertificate, serverCertificateNames } from "./server-identity.js";

export const DEFAULT_LISTEN = "127.0.0.1:7443";
export const DEFAULT_PORT = 7443;

export interface ControlPlaneOptions {
  dataDir: string;
  storage?: string | undefined;
  trustDomain?: string | undefined;
  listen?: string | undefined;
  /** host[:port] clients use to reach this server; added to the TLS certificate and printed in tokens. */
  publicAddrs?: string[] | undefined;
  svidTtlMs?: number | undefined;
  jwtTtlMs?: number | undefined;
  jwtMaxTtlMs?: number | undefined;
  joinTokenTtlMs?: number | undefined;
  bodyLimitBytes?: number | undefined;
  lockPollMs?: number | undefined;
  maintenanceIntervalMs?: number | undefined;
  caActivationDelayMs?: number | undefined;
  logLevel?: string | undefined;
  /** Event fields stored as keyed HMACs instead of values, e.g. `details.prompt`. */
  auditHashedFields?: string[] | undefined;
  /** Continuous JSON Lines export of the audit log into this directory. */
  auditExportDir?: string | undefined;
  /** SIEM webhook receiving audit batches. */
  auditWebhook?: string | undefined;
  /** Prune audit events older than this, up to the last signed checkpoint before it. */
  auditRetentionMs?: number | undefined;
  /** Sign an audit checkpoint every this many events (default 1000)… */
  auditCheckpointEvents?: number | undefined;
  /** …or this often when the log grew (default 60 s). */
  auditCheckpointIntervalMs?: number | undefined;
  /** MCP proxy limits (sessions, processes, timeouts, message size). */
  mcpLimits?: Partial<ProxyLimits> | undefined;
  /** Extra audiences a JWT-SVID may name to be accepted by the proxies. */
  proxyAudiences?: string[] | undefined;
  /** The LLM proxy: its configuration (or a YAML file holding it) and the Redis that replicas share limits and budgets in. */
  llm?: { config?: LlmConfig | undefined; configPath?: string | undefined; redis?: string | undefined; redisPrefix?: string | undefined; env?: NodeJS.ProcessEnv } | undefined;
  /**
   * The database proxy's PostgreSQL listener: host:port, or "off" (default when embedding;
   * `mandate start` listens on 127.0.0.1:7432). `optional`: a busy port logs and goes on.
   */
  db?: { listen?: string | undefined; optional?: boolean; keepLiterals?: boolean; auditDurability?: "all" | "writes" | undefined; env?: NodeJS.ProcessEnv } | undefined;
  /** User certificates (default and maximum lifetime) and failed-login limits. */
  users?: Partial<UserLoginSettings> | undefined;
  /** The MCP endpoint's OAuth authorization server (access token, code and login-page lifetimes). */
  oauth?: Partial<OAuthSettings> | undefined;
  /** Embedders and tests may supply the access gate (it becomes `context.access`). */
  accessGate?: AccessGate | undefined;
  now?: () => number;
}

export interface ControlPlane {
  /** Where this host reaches the listener (loopback or the listen address). */
  url: string;
  /** What agents are told to dial (the first --public-addr, else `url`). */
  publicUrl: string;
  port: number;
  created: boolean;
  dataDir: string;
  adminIdentityPath: string;
  context: ServerContext;
  app: FastifyInstance;
  close(): Promise<void>;
  /** Runs one maintenance pass now (tests). */
  maintain(): Promise<void>;
}

const SERVER_CERT_TTL_MS = 24 * 3600_000;
const ADMIN_CERT_TTL_MS = 24 * 3600_000;

export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const now = options.now ?? Date.now;
  const dataDir = resolve(options.dataDir);
  const listen = parseHostPort(options.listen ?? DEFAULT_LISTEN, DEFAULT_PORT, "--listen");
  const publicAddrs = (options.publicAddrs ?? []).map((a) => parseHostPort(a, listen.port, "--public-addr"));
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const releaseDataDir = await claimDataDir(dataDir);
  const store = await Store.open({ storage: options.storage, dataDir }).catch(async (error: unknown) => {
    await releaseDataDir();
    throw error;
  });
  try {
    const { authority, created } = await TrustDomainAuthority.open(store, options.trustDomain, {
      now,
      activationDelayMs: options.caActivationDelayMs ?? 5 * 60_000,
    });
    const audit = new StoreAuditLog(store, { hashedFields: options.auditHashedFields ?? [] });
    const locks = new LockRegistry(store, now);
    await locks.start(options.lockPollMs ?? 200);
    const svidTtlMs = options.svidTtlMs ?? 3600_000;
    const jwtTtlMs = options.jwtTtlMs ?? 5 * 60_000;
    const jwtMaxTtlMs = Math.max(jwtTtlMs, options.jwtMaxTtlMs ?? 60 * 60_000);
    const verifierPool = new SignatureVerifierPool();
    const issuer = new X509SvidIssuer(authority, store, audit, now, verifierPool);
    const agents = new AgentRegistry(store, authority.trustDomain, now);
    const auth = new CallerAuthenticator(authority, locks, audit, now);
    const proxyAudiences = [`spiffe://${authority.trustDomain}${SERVER_PATH}`, ...(options.proxyAudiences ?? [])];
    const joinRules = new JoinRuleRegistry(store, now);
    const context: ServerContext = {
      store,
      authority,
      issuer,
      locks,
      audit,
      agents,
      joins: new TokenJoinService({ store, authority, issuer, agents, locks, audit, svidTtlMs, now }),
      joinRules,
      attestedJoins: new AttestedJoinService({ store, issuer, agents, rules: joinRules, verifier: new JoinTokenVerifier(now), locks, audit, svidTtlMs, now }),
      svids: new SvidService({ store, authority, issuer, locks, audit, svidTtlMs, jwtTtlMs, jwtMaxTtlMs, now }),
      auth,
      workloadAuth: new WorkloadAuthenticator(auth, new SvidVerifier(authority, locks), audit, () => proxyAudiences),
      settings: { svidTtlMs, jwtTtlMs, jwtMaxTtlMs, joinTokenTtlMs: options.joinTokenTtlMs ?? DEFAULT_JOIN_TOKEN_TTL_MS, publicUrl: "", proxyAudiences },
      metrics: new Registry(),
      now,
    };
    const roles = new RoleRegistry(store, now);
    await roles.start(options.lockPollMs ?? 200);
    context.policy = Object.assign(createPolicyEngine({ source: roles, now }), { registry: roles });
    // Policy and users are looked up per call, so those modules may be wired in after this layer.
    const delegation = await startDelegationLayer({
      store,
      authority,
      agents,
      locks,
      audit,
      auth,
      policy: () => context.policy,
      users: () => context.users,
      audiences: () => proxyAudiences,
      pollIntervalMs: options.lockPollMs ?? 200,
      now,
    });
    context.delegation = delegation;
    context.access = options.accessGate ?? delegation.gate;
    context.users = new UserRegistry(store, authority.trustDomain, now);
    context.userLogin = new UserLoginService({ users: context.users, issuer, authority, locks, audit, settings: options.users, now });
    // The gate is looked up per call, so the access layer can be wired in after the proxies.
    const unconfigured: AccessGate = {
      authorize: async (request) => ({
        allow: false,
        reasons: ["denied: no access layer is configured in this control plane"],
        obligations: [],
        policyIds: [],
        principal: { kind: "agent", name: request.caller.agent ?? request.caller.spiffeId, spiffeId: request.caller.spiffeId, roles: [], labels: {} },
      }),
    };
    const llmConfig = options.llm?.configPath ? await loadLlmConfigFile(options.llm.configPath) : (options.llm?.config ?? parseLlmConfig({}));
    const gate: AccessGate = { authorize: (request) => (context.access ?? unconfigured).authorize(request) };
    context.llm = await LlmService.start({
      config: llmConfig,
      store,
      audit,
      gate,
      authenticate: (request, attempted) => context.workloadAuth.authenticate(request, attempted),
      metricsRegistry: context.metrics,
      redisUrl: options.llm?.redis,
      redisPrefix: options.llm?.redisPrefix,
      env: options.llm?.env,
      now,
      log: (message, error) => app.log.error({ err: error }, message),
    });

    const mcpCatalog = new McpCatalog(store, now);
    const mcpPins = new DefinitionPins(store, audit, now);
    const mcpProxy = new McpProxy({
      catalog: mcpCatalog,
      pins: mcpPins,
      gate: { authorize: (request) => (context.access ?? unconfigured).authorize(request) },
      audit,
      limits: options.mcpLimits,
      now,
      // Built-in `--db` servers: their statements enter the database proxy as the MCP caller.
      openBuiltin: (spec, credentials) => openBuiltinDbServer(context.db, spec, credentials),
    });
    context.mcp = { catalog: mcpCatalog, pins: mcpPins, proxy: mcpProxy };

    const names = serverCertificateNames(listen.host, publicAddrs.map((a) => a.host));
    let serverCert = await issueControlPlaneCertificate(authority, store, "server", names, SERVER_CERT_TTL_MS, now());
    const app = Fastify({
      logger: { level: options.logLevel ?? "warn" },
      bodyLimit: options.bodyLimitBytes ?? 64 * 1024,
      https: {
        key: serverCert.keyPem,
        cert: serverCert.chainPem,
        ca: authority.x509AuthoritiesPem(),
        // Client certificates are optional at the TLS layer because joining and the
        // bundle endpoint come before any identity; routes that need one demand it.
        requestCert: true,
        rejectUnauthorized: false,
        minVersion: "TLSv1.2",
        // Identities are cached per TLS connection; a TLS 1.2 renegotiation must not swap the peer certificate under them.
        secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
      },
      forceCloseConnections: true,
    });
    installErrorHandling(app);
    registerHealthRoutes(app, context);
    registerIdentityRoutes(app, context);
    registerAdminRoutes(app, context);
    registerPolicyRoutes(app, context);
    registerWorkloadRoutes(app, context);
    registerLlmRoutes(app, context, context.llm);
    const llmService = context.llm;
    registerJoinRoutes(app, context);
    const sso = registerUserRoutes(app, context, context.userLogin);
    const oauth = registerOAuthRoutes(app, context, context.userLogin, options.oauth, sso);
    delegation.registerRoutes(app);
    registerMcpAdminRoutes(app, context);
    // A new object whenever the server certificate or the bundle changes, so the listener re-applies it.
    let dbTls: { cert: IssuedKeyPair; sequence: number; options: { key: string; cert: string; ca: string } } | undefined;
    const dbTlsOptions = () => {
      if (!dbTls || dbTls.cert !== serverCert || dbTls.sequence !== authority.bundleSequence) {
        dbTls = { cert: serverCert, sequence: authority.bundleSequence, options: { key: serverCert.keyPem, cert: serverCert.chainPem, ca: authority.x509AuthoritiesPem() } };
      }
      return dbTls.options;
    };
    const dbListenOption = options.db?.listen ?? "off";
    const dbService = async (listen: string) =>
      DbService.start({
        store,
        audit,
        locks,
        gate: { authorize: (request) => (context.access ?? unconfigured).authorize(request) },
        dataDir,
        listen: listen === "off" ? undefined : parseHostPort(listen, DEFAULT_DB_PORT, "--db-listen"),
        tlsOptions: dbTlsOptions,
        verifyPeer: (socket) => ({ ...callerFromTlsSocket(socket, authority, now()), via: "mtls" }),
        keepLiterals: options.db?.keepLiterals,
        auditDurability: options.db?.auditDurability,
        env: options.db?.env,
        now,
        log: (message, error) => app.log.error({ err: error }, message),
      });
    try {
      context.db = await dbService(dbListenOption);
    } catch (error) {
      if (!options.db?.optional || (error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
      app.log.warn(`the database proxy's port ${dbListenOption} is in use; its listener is off (pass --db-listen HOST:PORT)`);
      context.db = await dbService("off");
    }
    registerDbRoutes(app, context, context.db);
    const authenticateMcpCaller = mcpCallerAuthenticator(context, oauth, (request) => context.workloadAuth.authenticate(request, "mcp.request"));
    registerMcpRoutes(app, {
      proxy: mcpProxy,
      authenticate: async (request) => ({ ...(await authenticateMcpCaller(request)), address: request.ip }),
      // People's MCP clients find the authorization server from here (RFC 9728).
      resourceMetadataUrl: (request) => oauth.resourceMetadataUrl((request.params as { server?: string }).server ?? ""),
    });
    await app.listen({ host: listen.host || "0.0.0.0", port: listen.port });
    const port = (app.server.address() as AddressInfo).port;
    // Local commands dial the listener directly; tokens and printed commands use the public address.
    const localHost = listen.host === "" || listen.host === "0.0.0.0" ? "127.0.0.1" : listen.host === "::" ? "::1" : listen.host;
    const url = `https://${formatHostPort({ host: localHost, port })}`;
    const publicUrl = publicAddrs[0] ? `https://${formatHostPort({ host: publicAddrs[0].host, port: publicAddrs[0].port })}` : url;
    context.settings.publicUrl = publicUrl;
    // A JWT-SVID minted for the address an agent dials is as good as one for the server's SPIFFE ID.
    for (const address of new Set([publicUrl, url])) if (!proxyAudiences.includes(address)) proxyAudiences.push(address);

    const adminIdentityPath = join(dataDir, ADMIN_IDENTITY_FILE);
    let adminCert: IssuedKeyPair | undefined;
    const refreshAdminIdentity = async () => {
      adminCert = await issueControlPlaneCertificate(authority, store, "admin", [], ADMIN_CERT_TTL_MS, now());
      await writeIdentityFile(adminIdentityPath, {
        kind: "mandate-identity",
        version: 1,
        spiffeId: `spiffe://${authority.trustDomain}/mandate/admin`,
        authServer: url,
        certPem: adminCert.chainPem,
        keyPem: adminCert.keyPem,
        bundlePem: authority.x509AuthoritiesPem(),
        caPin: authority.caPin,
        expiresAt: new Date(adminCert.notAfter).toISOString(),
      });
    };
    // Like tctl on an auth host: admin commands run here find this file through --data-dir.
    await refreshAdminIdentity();

    const applyTls = () => {
      app.server.setSecureContext({ key: serverCert.keyPem, cert: serverCert.chainPem, ca: authority.x509AuthoritiesPem(), minVersion: "TLSv1.2", secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION } as never);
    };
    const halfLifePassed = (cert: IssuedKeyPair) => now() >= cert.issuedAt + (cert.notAfter - cert.issuedAt) / 2;
    const maintenancePass = async () => {
      try {
        const signerBefore = authority.x509Signer.authorityId;
        const changed = await authority.reload();
        await authority.pruneRetired(jwtMaxTtlMs);
        const signerChanged = authority.x509Signer.authorityId !== signerBefore;
        if (signerChanged || halfLifePassed(serverCert)) serverCert = await issueControlPlaneCertificate(authority, store, "server", names, SERVER_CERT_TTL_MS, now());
        if (changed || signerChanged || authority.bundleSequence !== lastAppliedSequence) {
          applyTls();
          lastAppliedSequence = authority.bundleSequence;
        }
        if (adminCert && (signerChanged || halfLifePassed(adminCert))) await refreshAdminIdentity();
      } catch (error) {
        app.log.error({ err: error }, "maintenance pass failed");
      }
    };
    // Passes never overlap. An explicit call made while a pass runs waits for it and then
    // runs one more, so its caller sees state read after the call (a rotation done just
    // before it); concurrent explicit calls share that one follow-up pass.
    let running: Promise<void> | undefined;
    let queued: Promise<void> | undefined;
    const startPass = (): Promise<void> => {
      running = maintenancePass().finally(() => (running = undefined));
      return running;
    };
    const maintain = (): Promise<void> => {
      if (!running) return startPass();
      queued ??= running.then(() => {
        queued = undefined;
        return startPass();
      });
      return queued;
    };
    let lastAppliedSequence = authority.bundleSequence;
    const timer = setInterval(() => void (running ? undefined : startPass()), options.maintenanceIntervalMs ?? 1000);
    timer.unref();
    const exporters = [
      ...(options.auditExportDir ? [new JsonlFileSink(resolve(options.auditExportDir))] : []),
      ...(options.auditWebhook ? [new WebhookSink(options.auditWebhook)] : []),
    ].map((sink) => new AuditExporter(store, sink, { onError: (name, error, attempt) => app.log.warn({ sink: name, attempt, err: error }, "audit export failed; will retry") }));
    for (const exporter of exporters) exporter.start();
    const checkpointer = await AuditCheckpointer.open(store, `${authority.trustDomain}/audit`, {
      everyEvents: options.auditCheckpointEvents ?? 1000,
      everyMs: options.auditCheckpointIntervalMs ?? 60_000,
      now,
      onCheckpoint: options.auditExportDir ? checkpointFileSink(join(resolve(options.auditExportDir), "checkpoints.jsonl")) : undefined,
    });
    context.checkpointer = checkpointer;
    checkpointer.start(Math.min(1000, options.auditCheckpointIntervalMs ?? 1000));
    const retentionMs = options.auditRetentionMs;
    const prune = async () => {
      if (!retentionMs) return;
      try {
        const result = await pruneAuditLog(store, new Date(now() - retentionMs));
        if (result.pruned > 0) {
          await audit.append({ type: "audit.prune", code: "OK", actor: { kind: "system" }, outcome: { status: "ok" }, details: { pruned: result.pruned, throughSeq: result.throughSeq } });
        }
      } catch (error) {
        app.log.error({ err: error }, "audit retention pass failed");
      }
    };
    const retentionTimer = setInterval(() => void prune(), 3600_000);
    retentionTimer.unref();
    void prune();

    return {
      url,
      publicUrl,
      port,
      created,
      dataDir,
      adminIdentityPath,
      context,
      app,
      maintain,
      async close() {
        clearInterval(timer);
        await mcpProxy.close();
        await context.db?.close();
        for (const exporter of exporters) await exporter.stop();
        checkpointer.stop();
        clearInterval(retentionTimer);
        locks.stop();
        roles.stop();
        delegation.stop();
        await app.close();
        await llmService.close();
        await verifierPool.close();
        await store.close();
        await releaseDataDir();
      },
    };
  } catch (error) {
    await store.close().catch(() => undefined);
    await releaseDataDir();
    throw error;
  }
}
