import type { JsonRpcNotification, JsonRpcRequest, JsonRpcResponse } from "../jsonrpc.js";

export type Era = "legacy" | "modern";

/** A message an upstream sends that is not a response: a notification or a server→client request. */
export type InboundMessage = JsonRpcNotification | JsonRpcRequest;

export interface RequestHooks {
  /** notifications and server→client requests the upstream ties to this request */
  onRelated(message: InboundMessage): void;
  signal?: AbortSignal | undefined;
  timeoutMs: number;
  /** extra headers for an HTTP upstream (the 2026-07-28 Mcp-Param-* mirror) */
  headers?: Record<string, string> | undefined;
}

/**
 * One conversation with an MCP server: a stdio process, a Streamable HTTP session (or,
 * for the 2026-07-28 revision, the stateless endpoint), or a legacy HTTP+SSE stream.
 * Request ids are the proxy's own by the time they get here.
 */
export interface Upstream {
  request(message: JsonRpcRequest, hooks: RequestHooks): Promise<JsonRpcResponse>;
  /** a notification, or the answer to a server→client request */
  send(message: JsonRpcNotification | JsonRpcResponse): Promise<void>;
  /** messages no request claims: list_changed, resource updates, stray server→client requests */
  onUnsolicited: (message: InboundMessage) => void;
  onClose: (reason: string) => void;
  /** Opens the channel for unsolicited messages if the transport needs one (an HTTP GET stream). */
  listen?(): void;
  readonly closed: boolean;
  close(): Promise<void>;
}
