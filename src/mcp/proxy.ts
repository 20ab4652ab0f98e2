import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import type { AuditEventInput, AuditLog } from "../audit/index.js";
import type { AccessGate, GateDecision, McpItemKind } from "../policy/index.js";
import { McpAuditWriter, actorOf, decisionOf, delegationOf } from "./audit-events.js";
import type { McpCatalog, UpstreamSpec } from "./catalog.js";
import { Conversation, type InFlight, type ServerDescription } from "./conversation.js";
import type { DefinitionKind, DefinitionPins } from "./definitions.js";
import { CLIENT_CAPABILITIES_META, CLIENT_INFO_META, LOG_LEVEL_META, PROTOCOL_VERSION_META, SERVER_INFO_META, SUBSCRIPTION_ID_META, paramHeadersOf, requestHeadersFor } from "./headers.js";
import {
  type JsonRpcId,
  type JsonRpcMessage,
  type JsonRpcNotification,
  type JsonRpcRequest,
  type JsonRpcResponse,
  type JsonRpcResult,
  RpcCode,
  RpcError,
  errorResponse,
  isErrorResponse,
  isPlainObject,
  messageBytes,
  metaOf,
} from "./jsonrpc.js";
import { scanResult } from "./poison.js";
import { type CallerCredentials, type ClientReply, DEFAULT_LIMITS, type ProxyLimits } from "./types.js";
import type { CancellableHooks } from "./upstream/http.js";
import { LEGACY_VERSIONS, MODERN_VERSION, PROXY_INFO, UpstreamPool, modernEnvelope } from "./upstream/pool.js";
import type { InboundMessage, Upstream } from "./upstream/types.js";

/** Where the proxy's own upstream requests (a definition refresh) answer to: nobody. */
const SILENT_REPLY: ClientReply = { event: () => undefined, finish: () => undefined, closed: false, onClose: () => undefined };

/** MCP tool names (2025-11-25): 1–128 of A–Z a–z 0–9 _ - . — nothing that could be a path. */
export const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

const CLIENT_REQUEST_METHODS = new Set([
  "initialize",
  "ping",
  "tools/list",
  "tools/call",
  "resources/list",
  "resources/templates/list",
  "resources/read",
  "resources/subscribe",
  "resources/unsubscribe",
  "prompts/list",
  "prompts/get",
  "completion/complete",
  "logging/setLevel",
  "server/discover",
  "subscriptions/listen",
]);
const CLIENT_NOTIFICATIONS = new Set(["notifications/initialized", "notifications/cancelled", "notifications/progress", "notifications/roots/list_changed"]);
/** server→client requests and the client capability (and policy item) each needs */
const SERVER_REQUESTS: Record<string, string> = { "sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots" };

const LISTS: Record<string, { key: string; kind: DefinitionKind; item: McpItemKind; action: string }> = {
  "tools/list": { key: "tools", kind: "tool", item: "tool", action: "mcp.tools/list" },
  "prompts/list": { key: "prompts", kind: "prompt", item: "prompt", action: "mcp.prompts/list" },
  "resources/list": { key: "resources", kind: "resource", item: "resource", action: "mcp.resources/list" },
  "resources/templates/list": { key: "resourceTemplates", kind: "resource", item: "resource", action: "mcp.resources/list" },
};

export interface McpProxyOptions {
  catalog: McpCatalog;
  pins: DefinitionPins;
  gate: AccessGate;
  audit: AuditLog;
  limits?: Partial<ProxyLimits> | undefined;
  now?: () => number;
  log?: (message: string, error?: unknown) => void;
  /**
   * Opens a built-in server (`transport: "db"`) for one conversation. `credentials` returns
   * the conversation's caller as of the current request, so the server acts for that caller.
   */
  openBuiltin?: ((spec: UpstreamSpec, credentials: () => CallerCredentials) => Promise<Upstream>) | undefined;
}

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("base64url");
}

function typeFor(method: string): string {
  switch (method) {
    case "tools/call":
      return "mcp.tool.call";
    case "tools/list":
      return "mcp.tool.list";
    case "resources/read":
      return "mcp.resource.read";
    case "resources/list":
    case "resources/templates/list":
      return "mcp.resource.list";
    case "prompts/get":
      return "mcp.prompt.get";
    case "prompts/list":
      return "mcp.prompt.list";
    default:
      return "mcp.request";
  }
}

/**
 * A request's cancellation. Its signal is made only when an upstream reads it; an HTTP
 * upstream is handed a direct stop instead (see CancellableHooks), so a call that is
 * never cancelled makes no AbortSignal at all.
 */
class Cancellation extends AbortController {
  private aborted = false;
  private stop: (() => void) | undefined;

  onCancel(stop: () => void): void {
    if (this.aborted) stop();
    else this.stop = stop;
  }

  override abort(reason?: unknown): void {
    this.aborted = true;
    super.abort(reason);
    this.stop?.();
    this.stop = undefined;
  }
}

/**
 * The MCP proxy core, independent of HTTP: every client message comes in here with the
 * caller's verified credentials, is authorized by the access gate, recorded, and
 * forwarded as the same parsed object (ids remapped, nothing dropped).
 */
export class McpProxy {
  readonly limits: ProxyLimits;
  readonly pool: UpstreamPool;
  private readonly sessions = new Map<string, Conversation>();
  private readonly byCaller = new Map<string, Conversation>();
  private readonly sessionsPerCaller = new Map<string, number>();
  private readonly sharedUpstreams = new Map<string, Promise<{ upstream: Upstream; description: ServerDescription; era: "legacy" | "modern" }>>();
  private readonly sharedUsers = new Map<string, Set<Conversation>>();
  private readonly parked = new Map<string, { conversation: Conversation; entry: InFlight; upstreamCall: Promise<JsonRpcResponse>; pendingKeys: Map<string, JsonRpcId>; fingerprint: string; expires: number }>();
  private readonly audit: McpAuditWriter;
  private readonly now: () => number;
  private readonly reaper: NodeJS.Timeout;
  private readonly stateKey = randomBytes(32);
  private nextUpstreamId = 0;
  private readonly log: (message: string, error?: unknown) => void;

  constructor(private readonly options: McpProxyOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.now = options.now ?? Date.now;
    this.log = options.log ?? (() => undefined);
    this.audit = new McpAuditWriter(options.audit, (error) => this.log("audit append failed", error));
    this.pool = new UpstreamPool({ maxMessageBytes: this.limits.maxMessageBytes, maxProcessesPerServer: this.limits.maxProcessesPerServer, probeTimeoutMs: 10_000 });
    this.reaper = setInterval(() => void this.reapIdle(), Math.min(30_000, Math.max(1000, this.limits.idleMs / 4)));
    this.reaper.unref();
  }

  get sessionCount(): number {
    return this.sessions.size + this.byCaller.size;
  }

  // ---------------------------------------------------------------- sessions

  /** The 2025-era session a request names, if it exists and belongs to this caller. */
  session(id: string, server: string, credentials: CallerCredentials): Conversation {
    const conversation = this.sessions.get(id);
    // Someone else's session id is answered exactly like an unknown one.
    if (!conversation || conversation.closed || conversation.spec.server.name !== server || conversation.owner !== credentials.caller.spiffeId) {
      throw new RpcError(RpcCode.SESSION_NOT_FOUND, "session not found; start a new one with initialize", undefined, 404);
    }
    conversation.credentials = credentials;
    conversation.lastActivity = this.now();
    return conversation;
  }

  private reserve(credentials: CallerCredentials): void {
    const owner = credentials.caller.spiffeId;
    if (this.sessionCount >= this.limits.maxSessions) throw new RpcError(RpcCode.TOO_MANY_SESSIONS, `the proxy holds ${this.sessionCount} sessions (its limit); try again later`, undefined, 429);
    const mine = this.sessionsPerCaller.get(owner) ?? 0;
    if (mine >= this.limits.maxSessionsPerCaller) throw new RpcError(RpcCode.TOO_MANY_SESSIONS, `${owner} already holds ${mine} MCP sessions (the limit); end unused ones with HTTP DELETE`, undefined, 429);
    this.sessionsPerCaller.set(owner, mine + 1);
  }

  private release(conversation: Conversation): void {
    const owner = conversation.owner;
    const mine = (this.sessionsPerCaller.get(owner) ?? 1) - 1;
    if (mine <= 0) this.sessionsPerCaller.delete(owner);
    else this.sessionsPerCaller.set(owner, mine);
  }

  private async openSession(server: string, credentials: CallerCredentials, downstream: "legacy" | "modern", callerKey: string): Promise<Conversation> {
    try {
      const spec = await this.options.catalog.upstream(server).catch(() => {
        throw new RpcError(RpcCode.INVALID_PARAMS, `no MCP server ${JSON.stringify(server)} in the catalog`, undefined, 404);
      });
      this.reserve(credentials);
      return this.createSession(spec, credentials, downstream, callerKey);
    } catch (error) {
      // Refusals are evidence too (a flood of sessions, a probe for server names).
      const rpc = error as RpcError;
      this.audit.record({ type: "mcp.session.open", code: rpc.code === RpcCode.TOO_MANY_SESSIONS ? "TOO_MANY_SESSIONS" : "NOT_FOUND", actor: actorOf(credentials), target: { server: server.slice(0, 64) }, outcome: { status: "error", error: String(rpc.code), message: rpc.message } });
      throw error;
    }
  }

  private createSession(spec: UpstreamSpec, credentials: CallerCredentials, downstream: "legacy" | "modern", callerKey: string): Conversation {
    const server = spec.server.name;
    const id = `mcps_${randomBytes(18).toString("base64url")}`;
    const conversation = new Conversation(id, spec, downstream, credentials, this.now(), callerKey);
    if (downstream === "legacy") this.sessions.set(id, conversation);
    else this.byCaller.set(callerKey, conversation);
    this.audit.record({
      type: "mcp.session.open",
      code: "OK",
      actor: actorOf(credentials),
      correlation: { session: id },
      target: { server },
      outcome: { status: "ok" },
      details: { era: downstream, transport: spec.server.transport },
    });
    return conversation;
  }

  async closeSession(conversation: Conversation, reason: string): Promise<void> {
    if (conversation.closed) return;
    conversation.closed = true;
    if (conversation.downstream === "legacy") this.sessions.delete(conversation.id);
    else this.byCaller.delete(conversation.callerKey);
    this.release(conversation);
    for (const entry of conversation.inflight.values()) entry.controller.abort();
    for (const pending of conversation.serverRequests.values()) clearTimeout(pending.timer);
    conversation.serverRequests.clear();
    conversation.modernListen?.abort();
    for (const sub of conversation.subscriptions.values()) sub.reply.finish({ jsonrpc: "2.0", id: sub.clientId, result: { resultType: "complete", _meta: { [SUBSCRIPTION_ID_META]: sub.clientId } } });
    conversation.listenSink?.finish(errorResponse(null, RpcCode.SESSION_NOT_FOUND, "session closed"));
    if (conversation.sharedUpstream) this.sharedUsers.get(conversation.spec.server.name)?.delete(conversation);
    else await conversation.upstream?.close().catch(() => undefined);
    this.audit.record({
      type: "mcp.session.close",
      code: "OK",
      actor: actorOf(conversation.credentials),
      correlation: { session: conversation.id },
      target: { server: conversation.spec.server.name },
      outcome: { status: "ok", message: reason, latencyMs: this.now() - conversation.createdAt },
    });
  }

  async deleteSession(id: string, server: string, credentials: CallerCredentials): Promise<void> {
    await this.closeSession(this.session(id, server, credentials), "closed by the client (HTTP DELETE)");
  }

  private async reapIdle(): Promise<void> {
    const cutoff = this.now() - this.limits.idleMs;
    for (const conversation of [...this.sessions.values(), ...this.byCaller.values()]) {
      if (!conversation.busy && conversation.lastActivity < cutoff) await this.closeSession(conversation, "idle");
    }
    const now = this.now();
    for (const [key, parked] of this.parked) {
      if (parked.expires < now) {
        this.parked.delete(key);
        parked.entry.controller.abort();
      }
    }
  }

  /** Ends every session (server shutdown or a server removed from the catalog). */
  async closeAll(server?: string): Promise<void> {
    for (const conversation of [...this.sessions.values(), ...this.byCaller.values()]) {
      if (!server || conversation.spec.server.name === server) await this.closeSession(conversation, "shut down");
    }
    for (const [name, shared] of this.sharedUpstreams) {
      if (server && name !== server) continue;
      this.sharedUpstreams.delete(name);
      await shared.then((s) => s.upstream.close()).catch(() => undefined);
    }
    if (server) {
      this.pool.forget(server);
      this.options.pins.forget(server);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.reaper);
    await this.closeAll();
    await this.audit.flush();
  }

  // ---------------------------------------------------------------- upstream

  private describe(result: Record<string, unknown>, modern: boolean): ServerDescription {
    const meta = isPlainObject(result._meta) ? result._meta : {};
    return {
      ...(typeof result.protocolVersion === "string" ? { protocolVersion: result.protocolVersion } : {}),
      capabilities: isPlainObject(result.capabilities) ? result.capabilities : {},
      serverInfo: modern ? meta[SERVER_INFO_META] : result.serverInfo,
      ...(typeof result.instructions === "string" ? { instructions: result.instructions } : {}),
      ...(Array.isArray(result.supportedVersions) ? { supportedVersions: result.supportedVersions as string[] } : {}),
    };
  }

  /** Initializes a 2025-era upstream on the proxy's own behalf (stateless sharing, or a 2026-07-28 client). */
  private async initializeUpstream(upstream: Upstream, capabilities: unknown, clientInfo: unknown): Promise<ServerDescription> {
    const answer = await upstream.request(
      { jsonrpc: "2.0", id: this.upstreamId(), method: "initialize", params: { protocolVersion: LEGACY_VERSIONS[0], capabilities: capabilities ?? {}, clientInfo: clientInfo ?? PROXY_INFO } },
      { onRelated: () => undefined, timeoutMs: this.limits.requestTimeoutMs },
    );
    if (isErrorResponse(answer)) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `the MCP server refused initialize: ${answer.error.message}`);
    const description = this.describe(answer.result, false);
    if (upstream instanceof Object && "protocolVersion" in upstream && description.protocolVersion) (upstream as { protocolVersion?: string }).protocolVersion = description.protocolVersion;
    await upstream.send({ jsonrpc: "2.0", method: "notifications/initialized" });
    return description;
  }

  private async sharedUpstream(spec: UpstreamSpec): Promise<{ upstream: Upstream; description: ServerDescription; era: "legacy" | "modern" }> {
    const name = spec.server.name;
    let shared = this.sharedUpstreams.get(name);
    if (!shared) {
      shared = (async () => {
        const opened = await this.pool.open(spec);
        const upstream = opened.upstream;
        upstream.onUnsolicited = (message) => {
          for (const conversation of this.sharedUsers.get(name) ?? []) this.unsolicited(conversation, message, true);
        };
        upstream.onClose = () => {
          this.sharedUpstreams.delete(name);
          for (const conversation of [...(this.sharedUsers.get(name) ?? [])]) void this.closeSession(conversation, "the shared MCP server went away");
        };
        const description = opened.era === "modern" ? await this.discover(upstream, opened.discover) : await this.initializeUpstream(upstream, {}, PROXY_INFO);
        upstream.listen?.();
        return { upstream, description, era: opened.era };
      })();
      shared.catch(() => this.sharedUpstreams.delete(name));
      this.sharedUpstreams.set(name, shared);
    }
    return shared;
  }

  private async discover(upstream: Upstream, known: Record<string, unknown> | undefined): Promise<ServerDescription> {
    if (known) return this.describe(known, true);
    const answer = await upstream.request({ jsonrpc: "2.0", id: this.upstreamId(), method: "server/discover", params: { _meta: modernEnvelope(undefined, {}, PROXY_INFO) } }, { onRelated: () => undefined, timeoutMs: this.limits.requestTimeoutMs });
    if (isErrorResponse(answer)) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `server/discover failed: ${answer.error.message}`);
    return this.describe(answer.result, true);
  }

  /**
   * Makes sure the conversation has its upstream. A 2025-era client's initialize is the
   * upstream's initialize when the conversation owns a 2025-era upstream; otherwise the
   * proxy initializes (or discovers) on its own.
   */
  private async attach(conversation: Conversation, clientInitialize?: JsonRpcRequest): Promise<JsonRpcResponse | undefined> {
    const spec = conversation.spec;
    const modernHttp = spec.server.transport === "http" && this.pool.knownEra(spec.server.name) === "modern";
    if (spec.server.stateless || modernHttp) {
      const shared = await this.sharedUpstream(spec);
      conversation.upstream = shared.upstream;
      conversation.upstreamEra = shared.era;
      conversation.description = shared.description;
      conversation.sharedUpstream = true;
      const users = this.sharedUsers.get(spec.server.name) ?? new Set();
      users.add(conversation);
      this.sharedUsers.set(spec.server.name, users);
      return undefined;
    }
    const opened = spec.server.transport === "db" ? await this.openBuiltin(conversation) : await this.pool.open(spec);
    const upstream = opened.upstream;
    conversation.upstream = upstream;
    conversation.upstreamEra = opened.era;
    if (opened.era === "modern" && spec.server.transport === "http") {
      // The probe just told us the server is stateless; share it from now on.
      await upstream.close().catch(() => undefined);
      return this.attach(conversation, clientInitialize);
    }
    upstream.onUnsolicited = (message) => this.unsolicited(conversation, message, false);
    upstream.onClose = (reason) => void this.closeSession(conversation, reason);
    if (opened.era === "modern") {
      conversation.description = await this.discover(upstream, opened.discover);
      return undefined;
    }
    if (clientInitialize) {
      const answer = await upstream.request({ ...clientInitialize, id: this.upstreamId() }, { onRelated: () => undefined, timeoutMs: this.limits.requestTimeoutMs });
      if (!isErrorResponse(answer)) {
        conversation.description = this.describe(answer.result, false);
        if ("protocolVersion" in upstream && conversation.description.protocolVersion) (upstream as { protocolVersion?: string }).protocolVersion = conversation.description.protocolVersion;
      }
      return answer;
    }
    conversation.description = await this.initializeUpstream(upstream, conversation.clientCapabilities, conversation.clientInfo);
    return undefined;
  }

  private async openBuiltin(conversation: Conversation): Promise<{ upstream: Upstream; era: "legacy" }> {
    if (!this.options.openBuiltin) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `MCP server ${conversation.spec.server.name} is built in, and this control plane does not host built-in servers`);
    // The SDK server speaks the 2025 revisions; the proxy initializes it per conversation.
    return { upstream: await this.options.openBuiltin(conversation.spec, () => conversation.credentials), era: "legacy" };
  }

  private upstreamId(): number {
    this.nextUpstreamId = (this.nextUpstreamId + 1) % Number.MAX_SAFE_INTEGER;
    return this.nextUpstreamId;
  }

  // ---------------------------------------------------------------- authorization

  private async authorize(conversation: Conversation, credentials: CallerCredentials, action: string, item: McpItemKind, name: string, request: string | undefined, context?: Record<string, unknown>): Promise<GateDecision> {
    try {
      return await this.options.gate.authorize({
        caller: credentials.caller,
        delegationToken: credentials.delegationToken,
        action,
        resource: { kind: "mcp", server: conversation.spec.server.name, item, name, labels: conversation.spec.server.labels },
        ...(context ? { context } : {}),
        correlation: { session: conversation.id, ...(request ? { request } : {}) },
      });
    } catch (error) {
      // No decision means no: the gate failing is a deny, with the reason recorded.
      this.log("access gate failed", error);
      return {
        allow: false,
        reasons: [`denied: the access layer could not decide (${(error as Error).message})`],
        obligations: [],
        policyIds: [],
        principal: { kind: "agent", name: credentials.caller.agent ?? credentials.caller.spiffeId, spiffeId: credentials.caller.spiffeId, roles: [], labels: {} },
      };
    }
  }

  private refusal(decision: GateDecision, what: string): RpcError {
    if (decision.accessRequest && decision.accessRequest.status === "pending") {
      return new RpcError(
        RpcCode.APPROVAL_REQUIRED,
        `approval required for ${what}: access request ${decision.accessRequest.id} is pending; retry the same call once it is approved`,
        { accessRequest: decision.accessRequest, reasons: decision.reasons },
      );
    }
    return new RpcError(RpcCode.PERMISSION_DENIED, `${what} denied by Mandate: ${decision.reasons[0] ?? "no policy allows it"}`, { reasons: decision.reasons, ...(decision.deniedBy ? { deniedBy: decision.deniedBy } : {}), ...(decision.accessRequest ? { accessRequest: decision.accessRequest } : {}) });
  }

  // ---------------------------------------------------------------- entry points

  /** A 2025-era client message; `session` is absent only for initialize. */
  async handleLegacy(server: string, session: Conversation | undefined, message: JsonRpcMessage, credentials: CallerCredentials, reply: ClientReply): Promise<void> {
    if ("method" in message && message.method === "initialize" && "id" in message) {
      if (session) throw new RpcError(RpcCode.INVALID_REQUEST, "this session is already initialized", undefined, 400);
      return this.initializeLegacy(server, message as JsonRpcRequest, credentials, reply);
    }
    if (!session) throw new RpcError(RpcCode.INVALID_REQUEST, "no Mcp-Session-Id: send initialize first", undefined, 400);
    await session.ready;
    return this.dispatch(session, message, credentials, reply);
  }

  private async initializeLegacy(server: string, message: JsonRpcRequest, credentials: CallerCredentials, reply: ClientReply): Promise<void> {
    const conversation = await this.openSession(server, credentials, "legacy", "");
    const params = message.params ?? {};
    conversation.clientCapabilities = isPlainObject(params.capabilities) ? params.capabilities : {};
    conversation.clientInfo = params.clientInfo;
    const requested = typeof params.protocolVersion === "string" ? params.protocolVersion : LEGACY_VERSIONS[0]!;
    let answer: JsonRpcResponse | undefined;
    try {
      conversation.ready = (async () => {
        answer = await this.attach(conversation, message);
      })();
      await conversation.ready;
    } catch (error) {
      await this.closeSession(conversation, `initialize failed: ${(error as Error).message}`);
      throw error;
    }
    if (answer) {
      if (isErrorResponse(answer)) await this.closeSession(conversation, "the MCP server refused initialize");
      conversation.protocolVersion = conversation.description?.protocolVersion;
      conversation.initializedByClient = true;
      return reply.finish({ ...answer, id: message.id }, conversation.id);
    }
    // The proxy answers: a shared 2025-era upstream, or a 2026-07-28 upstream (which has no initialize).
    const description = conversation.description!;
    const version = LEGACY_VERSIONS.includes(requested) ? requested : LEGACY_VERSIONS[0]!;
    conversation.protocolVersion = version;
    reply.finish(
      {
        jsonrpc: "2.0",
        id: message.id,
        result: {
          protocolVersion: version,
          capabilities: description.capabilities,
          serverInfo: description.serverInfo ?? { name: server, version: "unknown" },
          ...(description.instructions ? { instructions: description.instructions } : {}),
        },
      },
      conversation.id,
    );
  }

  /** A 2026-07-28 client request: no session, version and capabilities in `_meta`. */
  async handleModern(server: string, message: JsonRpcMessage, credentials: CallerCredentials, reply: ClientReply): Promise<void> {
    if (!("method" in message) || !("id" in message)) {
      // The revision defines no client notifications over HTTP; a response has no request to answer.
      return reply.finish(errorResponse(null, RpcCode.INVALID_REQUEST, "a 2026-07-28 client sends requests only"));
    }
    const request = message as JsonRpcRequest;
    const meta = metaOf(request) ?? {};
    const version = meta[PROTOCOL_VERSION_META];
    if (version !== MODERN_VERSION) {
      throw new RpcError(RpcCode.UNSUPPORTED_PROTOCOL_VERSION, "Unsupported protocol version", { supported: [MODERN_VERSION, ...LEGACY_VERSIONS], requested: version ?? null }, 400);
    }
    if (request.method === "initialize") throw new RpcError(RpcCode.INVALID_REQUEST, "initialize belongs to the 2025 protocol era; omit the 2026-07-28 _meta to use it", undefined, 400);
    const key = `${server}|${credentials.caller.spiffeId}|${credentials.delegationToken ? sha256(credentials.delegationToken) : "-"}`;
    let conversation = this.byCaller.get(key);
    if (!conversation || conversation.closed) {
      conversation = await this.openSession(server, credentials, "modern", key);
      const created = conversation;
      created.clientCapabilities = isPlainObject(meta[CLIENT_CAPABILITIES_META]) ? meta[CLIENT_CAPABILITIES_META] : {};
      created.clientInfo = meta[CLIENT_INFO_META];
      created.ready = this.attach(created).then(() => undefined);
      created.ready.catch(() => void this.closeSession(created, "the MCP server could not be reached"));
    }
    conversation.credentials = credentials;
    conversation.lastActivity = this.now();
    await conversation.ready;
    return this.dispatch(conversation, request, credentials, reply);
  }

  /** Answers to server→client requests come back here (2025-era clients POST them). */
  private clientResponse(conversation: Conversation, message: JsonRpcResponse): void {
    const pending = message.id === null ? undefined : conversation.serverRequests.get(String(message.id));
    if (!pending) return;
    conversation.serverRequests.delete(String(message.id));
    clearTimeout(pending.timer);
    this.audit.record({
      type: "mcp.request",
      code: isErrorResponse(message) ? "CLIENT_ERROR" : "OK",
      actor: actorOf(conversation.credentials),
      correlation: { session: conversation.id, request: String(message.id) },
      target: { server: conversation.spec.server.name, method: `${pending.method} (response)` },
      outcome: { status: isErrorResponse(message) ? "error" : "ok" },
      details: { direction: "client-to-server", response: isErrorResponse(message) ? message.error : message.result },
    });
    if (pending.resolve) return pending.resolve(message);
    if (pending.upstream && pending.upstreamId !== undefined) {
      pending.upstream.send({ ...message, id: pending.upstreamId }).catch((error: unknown) => this.log("relaying a client response failed", error));
    }
  }

  private async dispatch(conversation: Conversation, message: JsonRpcMessage, credentials: CallerCredentials, reply: ClientReply): Promise<void> {
    if (!("method" in message)) {
      this.clientResponse(conversation, message as JsonRpcResponse);
      return reply.finish({ jsonrpc: "2.0", id: null, result: {} } as unknown as JsonRpcResponse);
    }
    if (!("id" in message)) {
      await this.clientNotification(conversation, message as JsonRpcNotification, credentials);
      return reply.finish({ jsonrpc: "2.0", id: null, result: {} } as unknown as JsonRpcResponse);
    }
    const request = message as JsonRpcRequest;
    if (!CLIENT_REQUEST_METHODS.has(request.method)) {
      this.audit.record(this.event(conversation, credentials, request, undefined, { status: "error", error: "METHOD_NOT_FOUND" }, {}));
      throw new RpcError(RpcCode.METHOD_NOT_FOUND, `method ${JSON.stringify(request.method.slice(0, 64))} is not an MCP method the proxy forwards`, undefined, conversation.downstream === "modern" ? 404 : 200);
    }
    switch (request.method) {
      case "ping":
        if (conversation.upstreamEra === "modern") return reply.finish({ jsonrpc: "2.0", id: request.id, result: {} });
        break;
      case "logging/setLevel":
        conversation.logLevel = typeof request.params?.level === "string" ? request.params.level : undefined;
        if (conversation.upstreamEra === "modern") return reply.finish({ jsonrpc: "2.0", id: request.id, result: {} });
        break;
      case "server/discover":
        return reply.finish({ jsonrpc: "2.0", id: request.id, result: this.discoverResult(conversation) });
      case "subscriptions/listen":
        return this.listenModern(conversation, request, credentials, reply);
      case "resources/subscribe":
      case "resources/unsubscribe":
        return this.subscribe(conversation, request, credentials, reply);
      default:
        break;
    }
    if (LISTS[request.method]) return this.list(conversation, request, credentials, reply);
    return this.call(conversation, request, credentials, reply);
  }

  private discoverResult(conversation: Conversation): Record<string, unknown> {
    const d = conversation.description!;
    return {
      resultType: "complete",
      supportedVersions: [MODERN_VERSION],
      capabilities: d.capabilities,
      ...(d.instructions ? { instructions: d.instructions } : {}),
      _meta: { [SERVER_INFO_META]: d.serverInfo ?? { name: conversation.spec.server.name, version: "unknown" } },
      ttlMs: 0,
      cacheScope: "private",
    };
  }

  private async clientNotification(conversation: Conversation, message: JsonRpcNotification, credentials: CallerCredentials): Promise<void> {
    if (!CLIENT_NOTIFICATIONS.has(message.method)) {
      this.audit.record(this.event(conversation, credentials, message, undefined, { status: "error", error: "METHOD_NOT_FOUND", message: "unknown notification dropped" }, {}));
      return;
    }
    const upstream = conversation.upstream;
    if (!upstream) return;
    switch (message.method) {
      case "notifications/initialized":
        if (conversation.initializedByClient && !conversation.sharedUpstream && conversation.upstreamEra === "legacy") {
          await upstream.send(message);
          upstream.listen?.();
        }
        return;
      case "notifications/cancelled": {
        const requestId = message.params?.requestId;
        for (const [upstreamId, entry] of conversation.inflight) {
          if (entry.clientId !== requestId) continue;
          if (conversation.upstreamEra === "legacy") await upstream.send({ ...message, params: { ...message.params, requestId: upstreamId } }).catch(() => undefined);
          // A 2026-07-28 server treats the closed stream as the cancellation.
          entry.controller.abort();
        }
        this.audit.record(this.event(conversation, credentials, message, undefined, { status: "ok" }, { requestId }));
        return;
      }
      case "notifications/roots/list_changed":
        if (conversation.upstreamEra === "legacy" && !conversation.sharedUpstream) await upstream.send(message).catch(() => undefined);
        return;
      default:
        if (conversation.upstreamEra === "legacy" && !conversation.sharedUpstream) await upstream.send(message).catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------- forwarding

  /** The message as the upstream receives it: proxy id, the 2026-07-28 envelope when needed, progress token mapped. */
  private outgoing(conversation: Conversation, request: JsonRpcRequest, upstreamId: number, extraParams?: Record<string, unknown>): JsonRpcRequest {
    const meta = metaOf(request);
    const needsEnvelope = conversation.upstreamEra === "modern" && conversation.downstream === "legacy";
    const token = meta?.progressToken;
    if (!needsEnvelope && token === undefined && !extraParams) return { ...request, id: upstreamId };
    let nextMeta: Record<string, unknown> | undefined = meta;
    if (needsEnvelope) {
      nextMeta = modernEnvelope(meta, conversation.clientCapabilities, conversation.clientInfo);
      if (conversation.logLevel) nextMeta[LOG_LEVEL_META] = conversation.logLevel;
    }
    if (token !== undefined) nextMeta = { ...nextMeta, progressToken: upstreamId };
    return { ...request, id: upstreamId, params: { ...request.params, ...extraParams, ...(nextMeta ? { _meta: nextMeta } : {}) } };
  }

  private async forward(conversation: Conversation, request: JsonRpcRequest, credentials: CallerCredentials, reply: ClientReply, extraParams?: Record<string, unknown>, entryHook?: (entry: InFlight) => void): Promise<JsonRpcResponse> {
    const upstream = conversation.upstream;
    if (!upstream || upstream.closed) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the MCP server is not connected");
    const upstreamId = this.upstreamId();
    const meta = metaOf(request);
    const entry: InFlight = {
      clientId: request.id,
      reply,
      clientProgressToken: meta?.progressToken,
      controller: new Cancellation(),
      method: request.method,
      credentials,
      clientCapabilities: conversation.downstream === "modern" && isPlainObject(meta?.[CLIENT_CAPABILITIES_META]) ? (meta![CLIENT_CAPABILITIES_META] as Record<string, unknown>) : conversation.clientCapabilities,
    };
    entryHook?.(entry);
    conversation.inflight.set(upstreamId, entry);
    // A client that goes away cancels its request, as the 2026-07-28 transport defines.
    reply.onClose(() => {
      if (!this.isParked(entry)) entry.controller.abort();
    });
    const headers = conversation.upstreamEra === "modern" && request.method === "tools/call" ? await this.paramHeaderDecls(conversation, request) : undefined;
    const cancellation = entry.controller as Cancellation;
    const hooks: CancellableHooks = {
      onRelated: (message) => this.related(conversation, entry, message),
      get signal() {
        return cancellation.signal;
      },
      onCancel: (stop) => cancellation.onCancel(stop),
      timeoutMs: request.method === "subscriptions/listen" ? 2 ** 31 - 1 : this.limits.requestTimeoutMs,
      headers,
    };
    try {
      return await upstream.request(this.outgoing(conversation, request, upstreamId, extraParams), hooks);
    } finally {
      conversation.inflight.delete(upstreamId);
    }
  }

  private isParked(entry: InFlight): boolean {
    for (const parked of this.parked.values()) if (parked.entry === entry) return true;
    return false;
  }

  /** The pinned definition of a tool (routes read its x-mcp-header declarations). */
  toolDefinition(server: string, name: string): Promise<Record<string, unknown> | undefined> {
    return this.options.pins.definition(server, "tool", name);
  }

  /** `Mcp-Param-*` headers for a tools/call to a 2026-07-28 upstream, from the pinned definition's x-mcp-header. */
  private async paramHeaderDecls(conversation: Conversation, request: JsonRpcRequest): Promise<Record<string, string> | undefined> {
    const name = request.params?.name;
    if (typeof name !== "string") return undefined;
    const definition = await this.options.pins.definition(conversation.spec.server.name, "tool", name);
    if (!definition) return undefined;
    const { headers } = paramHeadersOf(definition.inputSchema);
    if (!headers.length) return undefined;
    const all = requestHeadersFor(request, headers);
    return Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith("mcp-param-")));
  }

  /** A notification or server→client request tied to one in-flight request. */
  private related(conversation: Conversation, entry: InFlight, message: InboundMessage): void {
    if ("id" in message) {
      void this.serverRequest(conversation, message as JsonRpcRequest, entry);
      return;
    }
    if (message.method === "notifications/progress") {
      if (entry.clientProgressToken === undefined) return;
      return entry.reply.event({ ...message, params: { ...message.params, progressToken: entry.clientProgressToken } });
    }
    if (message.method === "notifications/message") {
      return entry.reply.event(message);
    }
    if (entry.method === "subscriptions/listen" && conversation.downstream === "modern") {
      // The upstream tags with its own id for the subscription; the client knows it by its own.
      return entry.reply.event({ ...message, params: { ...message.params, _meta: { ...metaOf(message), [SUBSCRIPTION_ID_META]: entry.clientId } } });
    }
    if (entry.method === "subscriptions/listen") return this.unsolicited(conversation, message, false);
    entry.reply.event(message);
  }

  /** Messages no request claims: list changes, resource updates, stray server→client requests. */
  private unsolicited(conversation: Conversation, message: InboundMessage, shared: boolean): void {
    if ("id" in message) {
      if (shared) {
        // Nothing says which caller a shared server is asking; refuse rather than guess.
        void conversation.upstream?.send(errorResponse((message as JsonRpcRequest).id, RpcCode.PERMISSION_DENIED, "a stateless server shared by several clients cannot send requests to them"));
        return;
      }
      void this.serverRequest(conversation, message as JsonRpcRequest, undefined);
      return;
    }
    if (message.method === "notifications/progress") {
      // Servers may send progress outside the request's stream; the token says whose it is.
      const owner = conversation.inflight.get(message.params?.progressToken as JsonRpcId);
      if (owner) this.related(conversation, owner, message);
      return;
    }
    if (conversation.downstream === "legacy") {
      if (message.method === "notifications/cancelled") {
        const upstreamId = message.params?.requestId;
        for (const [downId, pending] of conversation.serverRequests) {
          if (pending.upstreamId === upstreamId) conversation.listenSink?.event({ ...message, params: { ...message.params, requestId: downId } });
        }
        return;
      }
      conversation.listenSink?.event(message);
      return;
    }
    for (const subscription of conversation.subscriptions.values()) {
      const f = subscription.filter;
      const wanted =
        (message.method === "notifications/tools/list_changed" && f.toolsListChanged) ||
        (message.method === "notifications/prompts/list_changed" && f.promptsListChanged) ||
        (message.method === "notifications/resources/list_changed" && f.resourcesListChanged) ||
        (message.method === "notifications/resources/updated" && f.resourceSubscriptions?.includes(String(message.params?.uri)));
      if (wanted) subscription.reply.event({ ...message, params: { ...message.params, _meta: { ...metaOf(message), [SUBSCRIPTION_ID_META]: subscription.clientId } } });
    }
  }

  /** sampling, elicitation, roots: relayed only when the client declared the capability and policy allows it. */
  private async serverRequest(conversation: Conversation, message: JsonRpcRequest, entry: InFlight | undefined): Promise<void> {
    const upstream = conversation.upstream!;
    if (message.method === "ping") {
      await upstream.send({ jsonrpc: "2.0", id: message.id, result: {} }).catch(() => undefined);
      return;
    }
    const capability = SERVER_REQUESTS[message.method];
    const credentials = entry?.credentials ?? conversation.credentials;
    const refuse = async (code: number, text: string, decision?: GateDecision) => {
      await upstream.send(errorResponse(message.id, code, text)).catch(() => undefined);
      this.audit.record(this.event(conversation, credentials, message, decision, { status: "error", error: code === RpcCode.PERMISSION_DENIED ? "PERMISSION_DENIED" : "REFUSED", message: text }, { direction: "server-to-client" }));
    };
    if (!capability) return refuse(RpcCode.METHOD_NOT_FOUND, `the proxy does not relay ${message.method} to clients`);
    const declared = (entry?.clientCapabilities ?? conversation.clientCapabilities)[capability];
    if (declared === undefined) return refuse(RpcCode.MISSING_CLIENT_CAPABILITY, `the client did not declare the ${capability} capability`);
    const decision = await this.authorize(conversation, credentials, `mcp.${message.method}`, "client", capability, entry ? String(entry.clientId) : undefined);
    if (!decision.allow) return refuse(RpcCode.PERMISSION_DENIED, `${message.method} denied by Mandate: ${decision.reasons[0] ?? "no policy allows it"}`, decision);
    this.audit.record(this.event(conversation, credentials, message, decision, { status: "ok" }, { direction: "server-to-client", params: message.params }));
    const downId = conversation.newServerRequestId();
    if (conversation.downstream === "modern") {
      // A 2026-07-28 client cannot be asked mid-request: the call turns into an input-required result.
      if (!entry?.onInputRequest) return refuse(RpcCode.INVALID_REQUEST, "a 2026-07-28 client can only be asked within one of its requests");
      const timer = setTimeout(() => conversation.serverRequests.delete(downId), this.limits.parkedTtlMs);
      timer.unref();
      conversation.serverRequests.set(downId, { method: message.method, upstreamId: message.id, upstream, timer });
      entry.onInputRequest(downId, { method: message.method, ...(message.params ? { params: message.params } : {}) });
      return;
    }
    const sink = entry && !entry.reply.closed ? entry.reply : conversation.listenSink;
    if (!sink || sink.closed) return refuse(RpcCode.INTERNAL_ERROR, "the client has no open stream to receive the request");
    const timer = setTimeout(() => {
      if (conversation.serverRequests.delete(downId)) void upstream.send(errorResponse(message.id, RpcCode.UPSTREAM_TIMEOUT, "the client did not answer in time")).catch(() => undefined);
    }, this.limits.clientResponseTimeoutMs);
    timer.unref();
    conversation.serverRequests.set(downId, { method: message.method, upstreamId: message.id, upstream, timer });
    sink.event({ ...message, id: downId });
  }

  // ---------------------------------------------------------------- lists

  private async list(conversation: Conversation, request: JsonRpcRequest, credentials: CallerCredentials, reply: ClientReply): Promise<void> {
    const started = performance.now();
    const spec = LISTS[request.method]!;
    const answer = await this.forward(conversation, request, credentials, reply);
    if (isErrorResponse(answer)) {
      this.audit.record(this.event(conversation, credentials, request, undefined, { status: "error", error: String(answer.error.code), message: answer.error.message, latencyMs: performance.now() - started }, {}));
      return reply.finish({ ...answer, id: request.id });
    }
    const result = answer.result;
    const items = Array.isArray(result[spec.key]) ? (result[spec.key] as unknown[]).filter(isPlainObject) : [];
    const candidates = spec.kind === "tool" ? items.filter((t) => typeof t.name === "string" && TOOL_NAME.test(t.name)) : items;
    const visibility = await this.options.pins.observe(conversation.spec.server, spec.kind, candidates, { session: conversation.id });
    const decisions = await Promise.all(
      candidates.map(async (item, i) => {
        if (visibility[i] !== "visible") return false;
        const name = String(spec.kind === "resource" ? (item.uri ?? item.uriTemplate) : item.name);
        return (await this.authorize(conversation, credentials, spec.action, spec.item, name, String(request.id))).allow;
      }),
    );
    const visible = candidates.filter((_, i) => decisions[i]);
    const out: Record<string, unknown> = { ...result, [spec.key]: visible };
    if (conversation.downstream === "modern") {
      // Filtered per caller: no shared cache may serve this list to anyone else.
      out.cacheScope = "private";
      if (typeof out.ttlMs !== "number") out.ttlMs = 0;
      if (out.resultType === undefined) out.resultType = "complete";
    }
    reply.finish({ ...answer, id: request.id, result: out });
    this.audit.record(
      this.event(conversation, credentials, request, undefined, { status: "ok", latencyMs: performance.now() - started }, {
        cursor: request.params?.cursor ?? null,
        offered: items.length,
        shown: visible.length,
        hidden: items.length - visible.length,
        ...(request.method === "tools/list" ? { tools: visible.map((t) => t.name) } : {}),
        responseBytes: messageBytes(out),
      }),
    );
  }

  // ---------------------------------------------------------------- calls

  private target(request: JsonRpcRequest): { item: McpItemKind; name: string; action: string; kind?: DefinitionKind } {
    const params = request.params ?? {};
    switch (request.method) {
      case "tools/call": {
        const name = params.name;
        if (typeof name !== "string" || !TOOL_NAME.test(name)) throw new RpcError(RpcCode.INVALID_PARAMS, `invalid tool name ${JSON.stringify(typeof name === "string" ? name.slice(0, 80) : name)}: tool names are 1-128 of A-Z a-z 0-9 _ - .`);
        if (params.arguments !== undefined && !isPlainObject(params.arguments)) throw new RpcError(RpcCode.INVALID_PARAMS, "tools/call arguments must be an object");
        return { item: "tool", name, action: "mcp.tools/call", kind: "tool" };
      }
      case "prompts/get": {
        if (typeof params.name !== "string" || params.name.length === 0 || params.name.length > 256) throw new RpcError(RpcCode.INVALID_PARAMS, "prompts/get needs a prompt name");
        return { item: "prompt", name: params.name, action: "mcp.prompts/get", kind: "prompt" };
      }
      case "resources/read": {
        if (typeof params.uri !== "string" || params.uri.length === 0 || params.uri.length > 2048) throw new RpcError(RpcCode.INVALID_PARAMS, "resources/read needs a uri");
        return { item: "resource", name: params.uri, action: "mcp.resources/read" };
      }
      case "completion/complete": {
        const ref = isPlainObject(params.ref) ? params.ref : {};
        if (ref.type === "ref/prompt" && typeof ref.name === "string") return { item: "prompt", name: ref.name, action: "mcp.prompts/get" };
        if (ref.type === "ref/resource" && typeof ref.uri === "string") return { item: "resource", name: ref.uri, action: "mcp.resources/read" };
        throw new RpcError(RpcCode.INVALID_PARAMS, "completion/complete needs a ref/prompt or ref/resource");
      }
      default:
        // initialize-era plumbing (ping, logging/setLevel) carries no resource.
        return { item: "client", name: request.method, action: `mcp.${request.method}` };
    }
  }

  private async call(conversation: Conversation, request: JsonRpcRequest, credentials: CallerCredentials, reply: ClientReply): Promise<void> {
    const started = performance.now();
    const plumbing = request.method === "ping" || request.method === "logging/setLevel";
    const target = this.target(request);
    const args = request.params?.arguments;
    let decision: GateDecision | undefined;
    let intentId: string | undefined;
    if (!plumbing) {
      const pin = target.kind ? await this.knownDefinition(conversation, target.kind, target.name, credentials) : undefined;
      // Arguments are data under one key: a field named like a context key cannot replace it.
      decision = await this.authorize(conversation, credentials, target.action, target.item, target.name, String(request.id), { args: isPlainObject(args) ? args : {} });
      const details = { method: request.method, name: target.name, ...(args !== undefined ? { arguments: args } : {}), requestBytes: messageBytes(request) };
      if (pin && pin.visibility !== "visible") {
        const error = new RpcError(RpcCode.DEFINITION_PENDING, `${target.kind} ${target.name} on ${conversation.spec.server.name} is ${pin.visibility === "unknown" ? "not offered by the server" : `hidden: its definition changed and is ${pin.status === "rejected" ? "rejected" : "awaiting approval (mandate mcp drift ls)"}`}`);
        this.audit.record(this.event(conversation, credentials, request, decision, { status: "error", error: "DEFINITION_PENDING", message: error.message }, details));
        throw error;
      }
      if (!decision.allow) {
        const error = this.refusal(decision, `${target.item} ${target.name}`);
        this.audit.record(this.event(conversation, credentials, request, decision, { status: "error", error: decision.accessRequest?.status === "pending" ? "APPROVAL_REQUIRED" : "PERMISSION_DENIED", message: error.message }, details));
        throw error;
      }
      // No durable intent, no call: group commit batches concurrent intents into one fsync.
      intentId = (await this.audit.durable({ ...this.event(conversation, credentials, request, decision, { status: "ok", message: "intent recorded" }, details), code: "INTENT" })).id;
    }
    let answer: JsonRpcResponse;
    try {
      answer = await this.runWithInput(conversation, request, credentials, reply);
    } catch (error) {
      const rpc = error instanceof RpcError ? error : new RpcError(RpcCode.INTERNAL_ERROR, (error as Error).message);
      if (!plumbing) this.audit.record({ ...this.event(conversation, credentials, request, decision, { status: "error", error: String(rpc.code), message: rpc.message, latencyMs: performance.now() - started }, { method: request.method, name: target.name }), correlation: this.correlation(conversation, request, decision, intentId) });
      throw rpc;
    }
    let result: JsonRpcResponse = { ...answer, id: request.id };
    const outcome: Record<string, unknown> = { method: request.method, name: target.name };
    if (!isErrorResponse(answer) && !plumbing) {
      const scanned = scanResult(answer.result);
      if (scanned.findings.length) {
        outcome.findings = scanned.findings;
        this.audit.record({
          type: "mcp.poisoning",
          code: scanned.secrets ? "SECRET_IN_RESULT" : "INSTRUCTIONS_IN_RESULT",
          actor: actorOf(credentials),
          correlation: this.correlation(conversation, request, decision, intentId),
          target: { server: conversation.spec.server.name, [target.item]: target.name },
          outcome: { status: "ok", message: `${scanned.findings.length} finding(s) in the ${request.method} result; action ${scanned.secrets ? conversation.spec.server.secretAction : "flag"}` },
          details: { alert: true, findings: scanned.findings },
        });
      }
      if (scanned.secrets) {
        const action = conversation.spec.server.secretAction;
        outcome.secretAction = action;
        if (action === "block") result = errorResponse(request.id, RpcCode.RESULT_BLOCKED, `the ${request.method} result contained ${scanned.secrets} secret(s) and was blocked by Mandate (server policy: block)`);
        else if (action === "redact") result = { ...answer, id: request.id, result: scanned.redacted as Record<string, unknown> };
      }
    }
    if (conversation.downstream === "modern" && !isErrorResponse(result) && result.result.resultType === undefined) {
      // A 2025-era server omits it; a 2026-07-28 client requires it.
      result = { ...result, result: { ...result.result, resultType: "complete" } };
    }
    reply.finish(result);
    if (plumbing) {
      this.audit.record(this.event(conversation, credentials, request, undefined, { status: isErrorResponse(result) ? "error" : "ok", latencyMs: performance.now() - started }, {}));
      return;
    }
    const isError = isErrorResponse(result) || (result as JsonRpcResult).result?.isError === true;
    this.audit.record({
      ...this.event(conversation, credentials, request, decision, { status: isError ? "error" : "ok", ...(isError ? { error: isErrorResponse(result) ? String(result.error.code) : "TOOL_ERROR" } : {}), latencyMs: performance.now() - started }, {
        ...outcome,
        resultStatus: isErrorResponse(result) ? "rpc-error" : isError ? "tool-error" : "ok",
        responseBytes: messageBytes(result),
        result: isErrorResponse(result) ? result.error : (result as JsonRpcResult).result,
      }),
      correlation: this.correlation(conversation, request, decision, intentId),
    });
  }

  /**
   * The pin of the definition a call names. One the proxy has never seen (a client that
   * calls without listing) is listed once before deciding.
   */
  private async knownDefinition(conversation: Conversation, kind: DefinitionKind, name: string, credentials: CallerCredentials): Promise<Awaited<ReturnType<DefinitionPins["check"]>>> {
    const current = await this.options.pins.check(conversation.spec.server, kind, name);
    if (current.visibility !== "unknown") return current;
    await this.refreshDefinitions(conversation, kind, name, credentials);
    return this.options.pins.check(conversation.spec.server, kind, name);
  }

  private async refreshDefinitions(conversation: Conversation, kind: DefinitionKind, name: string, credentials: CallerCredentials): Promise<void> {
    const method = kind === "tool" ? "tools/list" : "prompts/list";
    let cursor: unknown;
    for (let page = 0; page < 20; page++) {
      const listing: JsonRpcRequest = { jsonrpc: "2.0", id: `mandate-refresh-${page}`, method, params: cursor === undefined ? {} : { cursor } };
      const answer = await this.forward(conversation, listing, credentials, SILENT_REPLY);
      if (isErrorResponse(answer)) return;
      const items = (Array.isArray(answer.result[kind === "tool" ? "tools" : "prompts"]) ? (answer.result[kind === "tool" ? "tools" : "prompts"] as unknown[]) : []).filter(isPlainObject);
      await this.options.pins.observe(conversation.spec.server, kind, kind === "tool" ? items.filter((t) => typeof t.name === "string" && TOOL_NAME.test(t.name)) : items, { session: conversation.id });
      cursor = answer.result.nextCursor;
      if (cursor === undefined || (await this.options.pins.check(conversation.spec.server, kind, name)).visibility !== "unknown") return;
    }
  }

  /**
   * Runs one request through the input-required machinery of whichever side needs it:
   * a 2026-07-28 server's input-required result is answered by asking a 2025-era client
   * (sampling, elicitation, roots over its stream) and retrying; a 2025-era server's
   * mid-call request to a 2026-07-28 client becomes an input-required result, with the
   * upstream call parked until the client retries.
   */
  private async runWithInput(conversation: Conversation, request: JsonRpcRequest, credentials: CallerCredentials, reply: ClientReply): Promise<JsonRpcResponse> {
    const requestState = request.params?.requestState;
    if (conversation.downstream === "modern" && typeof requestState === "string" && requestState.startsWith("mandate1.")) return this.resumeParked(conversation, request, credentials, reply, requestState);
    if (conversation.downstream === "modern" && conversation.upstreamEra === "legacy" && ["tools/call", "prompts/get", "resources/read"].includes(request.method)) {
      return this.parkable(conversation, request, credentials, reply);
    }
    let answer = await this.forward(conversation, request, credentials, reply);
    for (let round = 0; ; round++) {
      if (isErrorResponse(answer) || answer.result.resultType !== "input_required") return answer;
      const inputRequests = isPlainObject(answer.result.inputRequests) ? answer.result.inputRequests : {};
      if (conversation.downstream === "modern") {
        // Both sides speak input-required: pass it on once policy allows every request in it.
        for (const input of Object.values(inputRequests)) {
          const method = isPlainObject(input) && typeof input.method === "string" ? input.method : "";
          const capability = SERVER_REQUESTS[method];
          const decision = capability ? await this.authorize(conversation, credentials, `mcp.${method}`, "client", capability, String(request.id)) : undefined;
          if (!decision?.allow) throw new RpcError(RpcCode.PERMISSION_DENIED, `the MCP server asked for ${method || "an unknown input"}, which Mandate denies: ${decision?.reasons[0] ?? "not a known input request"}`);
        }
        return answer;
      }
      if (round >= this.limits.maxInputRounds) throw new RpcError(RpcCode.INTERNAL_ERROR, `the MCP server asked for input more than ${this.limits.maxInputRounds} times`);
      const responses: Record<string, unknown> = {};
      for (const [key, input] of Object.entries(inputRequests)) {
        if (!isPlainObject(input) || typeof input.method !== "string") continue;
        responses[key] = await this.askLegacyClient(conversation, input as { method: string; params?: Record<string, unknown> }, credentials, reply, request);
      }
      const extra: Record<string, unknown> = { inputResponses: responses };
      if (typeof answer.result.requestState === "string") extra.requestState = answer.result.requestState;
      answer = await this.forward(conversation, request, credentials, reply, extra);
    }
  }

  /** Asks a 2025-era client one server→client request on its stream and waits for the answer. */
  private async askLegacyClient(conversation: Conversation, input: { method: string; params?: Record<string, unknown> }, credentials: CallerCredentials, reply: ClientReply, request: JsonRpcRequest): Promise<unknown> {
    const capability = SERVER_REQUESTS[input.method];
    if (!capability) throw new RpcError(RpcCode.INVALID_PARAMS, `the MCP server asked for ${input.method}, which is not an input request`);
    if (conversation.clientCapabilities[capability] === undefined) throw new RpcError(RpcCode.MISSING_CLIENT_CAPABILITY, `the MCP server needs ${capability}, which the client did not declare`);
    const decision = await this.authorize(conversation, credentials, `mcp.${input.method}`, "client", capability, String(request.id));
    const asMessage: JsonRpcRequest = { jsonrpc: "2.0", id: conversation.newServerRequestId(), method: input.method, ...(input.params ? { params: input.params } : {}) };
    this.audit.record(this.event(conversation, credentials, asMessage, decision, { status: decision.allow ? "ok" : "error", ...(decision.allow ? {} : { error: "PERMISSION_DENIED" }) }, { direction: "server-to-client", params: input.params }));
    if (!decision.allow) throw new RpcError(RpcCode.PERMISSION_DENIED, `${input.method} denied by Mandate: ${decision.reasons[0] ?? "no policy allows it"}`);
    const sink = !reply.closed ? reply : conversation.listenSink;
    if (!sink || sink.closed) throw new RpcError(RpcCode.INTERNAL_ERROR, "the client has no open stream to receive the request");
    const answer = await new Promise<JsonRpcResponse>((resolve, reject) => {
      const timer = setTimeout(() => {
        conversation.serverRequests.delete(String(asMessage.id));
        reject(new RpcError(RpcCode.UPSTREAM_TIMEOUT, "the client did not answer in time"));
      }, this.limits.clientResponseTimeoutMs);
      timer.unref();
      conversation.serverRequests.set(String(asMessage.id), { method: input.method, resolve, timer });
      sink.event(asMessage);
    });
    if (isErrorResponse(answer)) throw new RpcError(answer.error.code, answer.error.message, answer.error.data);
    return answer.result;
  }

  private fingerprint(conversation: Conversation, request: JsonRpcRequest): string {
    const { requestState: _s, inputResponses: _i, _meta: _m, ...rest } = request.params ?? {};
    return sha256(`${conversation.owner}|${request.method}|${JSON.stringify(rest)}`);
  }

  private seal(handle: string, fingerprint: string, expires: number): string {
    const body = Buffer.from(JSON.stringify({ h: handle, f: fingerprint, e: expires })).toString("base64url");
    return `mandate1.${body}.${createHmac("sha256", this.stateKey).update(body).digest("base64url")}`;
  }

  private unseal(state: string): { h: string; f: string; e: number } {
    const [, body, mac] = state.split(".");
    const expected = createHmac("sha256", this.stateKey).update(body ?? "").digest();
    const given = Buffer.from(mac ?? "", "base64url");
    if (!body || given.length !== expected.length || !timingSafeEqual(given, expected)) throw new RpcError(RpcCode.INVALID_PARAMS, "requestState was not issued by this proxy or was altered");
    return JSON.parse(Buffer.from(body, "base64url").toString("utf8")) as { h: string; f: string; e: number };
  }

  private async parkable(conversation: Conversation, request: JsonRpcRequest, credentials: CallerCredentials, reply: ClientReply): Promise<JsonRpcResponse> {
    let entryRef: InFlight | undefined;
    let signalInput: (() => void) | undefined;
    const inputs = new Map<string, { method: string; params?: Record<string, unknown> }>();
    const inputArrived = new Promise<void>((resolve) => (signalInput = resolve));
    const upstreamCall = this.forward(conversation, request, credentials, reply, undefined, (entry) => {
      entryRef = entry;
      entry.onInputRequest = (key, input) => {
        inputs.set(key, input);
        // Let requests sent together land in one input-required result.
        setImmediate(() => signalInput?.());
      };
    });
    return this.awaitParked(conversation, request, upstreamCall, inputArrived, inputs, () => entryRef!);
  }

  private async awaitParked(conversation: Conversation, request: JsonRpcRequest, upstreamCall: Promise<JsonRpcResponse>, inputArrived: Promise<void>, inputs: Map<string, { method: string; params?: Record<string, unknown> }>, entry: () => InFlight): Promise<JsonRpcResponse> {
    const outcome = await Promise.race([upstreamCall.then((answer) => ({ answer })), inputArrived.then(() => ({ answer: undefined }))]);
    if (outcome.answer) return outcome.answer;
    const handle = randomBytes(16).toString("base64url");
    const expires = this.now() + this.limits.parkedTtlMs;
    const fingerprint = this.fingerprint(conversation, request);
    this.parked.set(handle, { conversation, entry: entry(), upstreamCall, pendingKeys: new Map([...inputs.keys()].map((k) => [k, conversation.serverRequests.get(k)?.upstreamId ?? k])), fingerprint, expires });
    upstreamCall.catch(() => undefined);
    return {
      jsonrpc: "2.0",
      id: request.id,
      result: { resultType: "input_required", inputRequests: Object.fromEntries(inputs), requestState: this.seal(handle, fingerprint, expires) },
    };
  }

  private async resumeParked(conversation: Conversation, request: JsonRpcRequest, _credentials: CallerCredentials, reply: ClientReply, state: string): Promise<JsonRpcResponse> {
    const sealed = this.unseal(state);
    const parked = this.parked.get(sealed.h);
    if (!parked || parked.conversation !== conversation || sealed.e < this.now()) throw new RpcError(RpcCode.INVALID_PARAMS, "requestState has expired or belongs to another caller; send the request again without it");
    if (sealed.f !== this.fingerprint(conversation, request)) throw new RpcError(RpcCode.INVALID_PARAMS, "requestState belongs to a different request");
    this.parked.delete(sealed.h);
    const responses = isPlainObject(request.params?.inputResponses) ? request.params.inputResponses : {};
    const entry = parked.entry;
    entry.reply = reply;
    entry.clientId = request.id;
    let signalInput: (() => void) | undefined;
    const inputs = new Map<string, { method: string; params?: Record<string, unknown> }>();
    const inputArrived = new Promise<void>((resolve) => (signalInput = resolve));
    entry.onInputRequest = (key, input) => {
      inputs.set(key, input);
      setImmediate(() => signalInput?.());
    };
    for (const key of parked.pendingKeys.keys()) {
      const pending = conversation.serverRequests.get(key);
      if (!pending) continue;
      conversation.serverRequests.delete(key);
      clearTimeout(pending.timer);
      const response = responses[key];
      const message: JsonRpcResponse = isPlainObject(response) ? { jsonrpc: "2.0", id: pending.upstreamId!, result: response } : errorResponse(pending.upstreamId!, RpcCode.INVALID_PARAMS, "the client gave no answer for this input request");
      await pending.upstream!.send(message).catch(() => undefined);
    }
    return this.awaitParked(conversation, request, parked.upstreamCall, inputArrived, inputs, () => entry);
  }

  // ---------------------------------------------------------------- subscriptions

  private async subscribe(conversation: Conversation, request: JsonRpcRequest, credentials: CallerCredentials, reply: ClientReply): Promise<void> {
    const uri = request.params?.uri;
    if (typeof uri !== "string") throw new RpcError(RpcCode.INVALID_PARAMS, `${request.method} needs a uri`);
    if (request.method === "resources/subscribe") {
      const decision = await this.authorize(conversation, credentials, "mcp.resources/read", "resource", uri, String(request.id));
      if (!decision.allow) throw this.refusal(decision, `resource ${uri}`);
      conversation.resourceSubscriptions.add(uri);
    } else conversation.resourceSubscriptions.delete(uri);
    if (conversation.upstreamEra === "legacy") {
      const answer = await this.forward(conversation, request, credentials, reply);
      return reply.finish({ ...answer, id: request.id });
    }
    if (conversation.listenSink) this.openModernListen(conversation);
    reply.finish({ jsonrpc: "2.0", id: request.id, result: {} });
  }

  /** A 2025-era client's GET stream: unsolicited messages from the upstream, whatever its era. */
  attachListenStream(conversation: Conversation, reply: ClientReply): void {
    conversation.listenSink?.finish(errorResponse(null, RpcCode.INVALID_REQUEST, "replaced by a newer stream"));
    conversation.listenSink = reply;
    reply.onClose(() => {
      if (conversation.listenSink === reply) conversation.listenSink = undefined;
    });
    if (conversation.upstreamEra === "modern") this.openModernListen(conversation);
    else conversation.upstream?.listen?.();
  }

  private openModernListen(conversation: Conversation): void {
    conversation.modernListen?.abort();
    const controller = new AbortController();
    conversation.modernListen = controller;
    const caps = conversation.description?.capabilities ?? {};
    const listChanged = (cap: unknown) => isPlainObject(cap) && cap.listChanged === true;
    const notifications = {
      ...(listChanged(caps.tools) ? { toolsListChanged: true } : {}),
      ...(listChanged(caps.prompts) ? { promptsListChanged: true } : {}),
      ...(listChanged(caps.resources) ? { resourcesListChanged: true } : {}),
      ...(conversation.resourceSubscriptions.size ? { resourceSubscriptions: [...conversation.resourceSubscriptions] } : {}),
    };
    const upstream = conversation.upstream!;
    const listen: JsonRpcRequest = { jsonrpc: "2.0", id: this.upstreamId(), method: "subscriptions/listen", params: { _meta: modernEnvelope(undefined, conversation.clientCapabilities, conversation.clientInfo), notifications } };
    upstream
      .request(listen, {
        onRelated: (message) => {
          if (!("id" in message) && message.method !== "notifications/subscriptions/acknowledged") conversation.listenSink?.event(message);
        },
        signal: controller.signal,
        timeoutMs: 2 ** 31 - 1,
      })
      .catch(() => undefined);
  }

  private async listenModern(conversation: Conversation, request: JsonRpcRequest, credentials: CallerCredentials, reply: ClientReply): Promise<void> {
    const filter = isPlainObject(request.params?.notifications) ? (request.params.notifications as Record<string, unknown>) : {};
    const uris = Array.isArray(filter.resourceSubscriptions) ? filter.resourceSubscriptions.filter((u): u is string => typeof u === "string").slice(0, 1000) : [];
    const allowed: string[] = [];
    for (const uri of uris) if ((await this.authorize(conversation, credentials, "mcp.resources/read", "resource", uri, String(request.id))).allow) allowed.push(uri);
    const agreed = {
      ...(filter.toolsListChanged === true ? { toolsListChanged: true } : {}),
      ...(filter.promptsListChanged === true ? { promptsListChanged: true } : {}),
      ...(filter.resourcesListChanged === true ? { resourcesListChanged: true } : {}),
      ...(allowed.length ? { resourceSubscriptions: allowed } : {}),
    };
    this.audit.record(this.event(conversation, credentials, request, undefined, { status: "ok" }, { notifications: agreed }));
    if (conversation.upstreamEra === "modern") {
      const forwarded: JsonRpcRequest = { ...request, params: { ...request.params, notifications: agreed } };
      const answer = await this.forward(conversation, forwarded, credentials, reply).catch((error: unknown) => errorResponse(request.id, error instanceof RpcError ? error.code : RpcCode.INTERNAL_ERROR, (error as Error).message));
      return reply.finish({ ...answer, id: request.id });
    }
    const key = String(request.id);
    conversation.subscriptions.set(key, { reply, clientId: request.id, filter: agreed });
    reply.onClose(() => conversation.subscriptions.delete(key));
    reply.event({ jsonrpc: "2.0", method: "notifications/subscriptions/acknowledged", params: { _meta: { [SUBSCRIPTION_ID_META]: request.id }, notifications: agreed } });
    conversation.upstream?.listen?.();
    for (const uri of allowed) {
      if (conversation.resourceSubscriptions.has(uri)) continue;
      conversation.resourceSubscriptions.add(uri);
      await this.forward(conversation, { jsonrpc: "2.0", id: `mandate-sub-${uri.slice(0, 32)}`, method: "resources/subscribe", params: { uri } }, credentials, reply).catch(() => undefined);
    }
  }

  // ---------------------------------------------------------------- audit

  /** A message that could not be parsed still leaves a trace: hostile input is evidence. */
  recordMalformed(server: string, credentials: CallerCredentials, error: RpcError): void {
    this.audit.record({
      type: "mcp.request",
      code: "MALFORMED_REQUEST",
      actor: actorOf(credentials),
      target: { server: server.slice(0, 64) },
      outcome: { status: "error", error: "MALFORMED_REQUEST", message: error.message },
      details: { rpcCode: error.code },
    });
  }

  private correlation(conversation: Conversation, request: { id?: JsonRpcId }, decision: GateDecision | undefined, parentEvent?: string): AuditEventInput["correlation"] {
    return {
      session: conversation.id,
      ...(request.id !== undefined ? { request: String(request.id) } : {}),
      ...(decision?.delegation ? { task: decision.delegation.task } : {}),
      ...(parentEvent ? { parentEvent } : {}),
    };
  }

  private event(conversation: Conversation, credentials: CallerCredentials, message: JsonRpcRequest | JsonRpcNotification, decision: GateDecision | undefined, outcome: AuditEventInput["outcome"], details: Record<string, unknown>): AuditEventInput {
    const delegation = delegationOf(decision);
    const name = typeof message.params?.name === "string" ? message.params.name : typeof message.params?.uri === "string" ? message.params.uri : undefined;
    return {
      type: "id" in message ? typeFor(message.method) : "mcp.notification",
      code: outcome.status === "ok" ? "OK" : (outcome.error ?? "ERROR"),
      actor: actorOf(credentials),
      ...(delegation ? { delegation } : {}),
      correlation: this.correlation(conversation, message as { id?: JsonRpcId }, decision),
      target: { server: conversation.spec.server.name, method: message.method, ...(name ? { name } : {}) },
      ...(decision ? { decision: decisionOf(decision) } : {}),
      outcome: outcome.latencyMs !== undefined ? { ...outcome, latencyMs: Math.round(outcome.latencyMs * 1000) / 1000 } : outcome,
      details: { era: conversation.downstream, upstreamEra: conversation.upstreamEra, ...details },
    };
  }
}
