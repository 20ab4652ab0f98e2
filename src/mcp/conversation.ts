import type { UpstreamSpec } from "./catalog.js";
import type { JsonRpcId, JsonRpcResponse } from "./jsonrpc.js";
import type { CallerCredentials, ClientReply } from "./types.js";
import type { Era, Upstream } from "./upstream/types.js";

/** What the upstream said about itself (InitializeResult or DiscoverResult, normalized). */
export interface ServerDescription {
  protocolVersion?: string;
  capabilities: Record<string, unknown>;
  serverInfo?: unknown;
  instructions?: string;
  supportedVersions?: string[];
}

export interface InFlight {
  clientId: JsonRpcId;
  reply: ClientReply;
  clientProgressToken?: unknown;
  controller: AbortController;
  method: string;
  credentials: CallerCredentials;
  /** the client capabilities this request declared (2026-07-28 clients declare them per request) */
  clientCapabilities: Record<string, unknown>;
  /** server→client requests waiting to become an input-required result (2026-07-28 client, 2025-era server) */
  onInputRequest?: (key: string, request: { method: string; params?: Record<string, unknown> }) => void;
}

export interface PendingServerRequest {
  method: string;
  /** answer goes back to the upstream under this id… */
  upstreamId?: JsonRpcId;
  upstream?: Upstream;
  /** …or to a waiting input-required round */
  resolve?: (response: JsonRpcResponse) => void;
  timer: NodeJS.Timeout;
}

export interface Subscription {
  reply: ClientReply;
  clientId: JsonRpcId;
  filter: { toolsListChanged?: boolean; promptsListChanged?: boolean; resourcesListChanged?: boolean; resourceSubscriptions?: string[] };
}

/**
 * One client's conversation with one MCP server through the proxy: a 2025-era
 * `Mcp-Session-Id` session, or (for 2026-07-28 clients, which have none) the state the
 * proxy keeps per caller. It owns or borrows the upstream, and maps the client's ids to
 * the proxy's own so concurrent callers never see each other's messages.
 */
export class Conversation {
  readonly createdAt: number;
  lastActivity: number;
  clientCapabilities: Record<string, unknown> = {};
  clientInfo: unknown;
  protocolVersion: string | undefined;
  logLevel: string | undefined;
  upstream: Upstream | undefined;
  upstreamEra: Era | undefined;
  /** a stateless server's upstream is shared; closing the conversation leaves it running */
  sharedUpstream = false;
  description: ServerDescription | undefined;
  ready: Promise<void> | undefined;
  initializedByClient = false;
  readonly inflight = new Map<JsonRpcId, InFlight>();
  readonly serverRequests = new Map<string, PendingServerRequest>();
  listenSink: ClientReply | undefined;
  readonly subscriptions = new Map<string, Subscription>();
  readonly resourceSubscriptions = new Set<string>();
  /** 2025-era client, 2026-07-28 server: the upstream subscriptions/listen that feeds the GET stream */
  modernListen: AbortController | undefined;
  closed = false;
  private nextServerRequest = 0;

  constructor(
    readonly id: string,
    readonly spec: UpstreamSpec,
    readonly downstream: Era,
    public credentials: CallerCredentials,
    now: number,
    /** the caller key a 2026-07-28 conversation is found by */
    readonly callerKey: string,
  ) {
    this.createdAt = now;
    this.lastActivity = now;
  }

  get owner(): string {
    return this.credentials.caller.spiffeId;
  }

  newServerRequestId(): string {
    return `mandate-${this.id.slice(-8)}-${++this.nextServerRequest}`;
  }

  get busy(): boolean {
    return this.inflight.size > 0 || this.listenSink !== undefined || this.subscriptions.size > 0 || this.serverRequests.size > 0;
  }
}
