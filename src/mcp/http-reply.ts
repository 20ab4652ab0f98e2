import type { ServerResponse } from "node:http";
import type { JsonRpcId, JsonRpcMessage, JsonRpcResponse } from "./jsonrpc.js";
import { RpcCode, RpcError, errorResponse, serializeMessage } from "./jsonrpc.js";
import { sseFrame, sseMessage } from "./sse.js";
import type { ClientReply } from "./types.js";

const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache, no-transform", "x-accel-buffering": "no" };

/**
 * One HTTP response as a `ClientReply`: plain JSON when the answer is all there is, an
 * SSE stream as soon as a related notification or server→client request comes first.
 */
export class HttpReply implements ClientReply {
  private streaming = false;
  private done = false;
  private readonly listeners: (() => void)[] = [];
  private keepAlive: NodeJS.Timeout | undefined;

  constructor(
    private readonly raw: ServerResponse,
    /** false for notifications and responses: they are acknowledged with 202 */
    private readonly expectsResponse: boolean,
    private readonly extraHeaders: Record<string, string> = {},
  ) {
    raw.on("close", () => {
      const wasOpen = !this.done;
      this.done = true;
      if (this.keepAlive) clearInterval(this.keepAlive);
      if (wasOpen) for (const listener of this.listeners.splice(0)) listener();
    });
  }

  get closed(): boolean {
    return this.done || this.raw.destroyed;
  }

  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.listeners.push(listener);
  }

  /** Starts the SSE stream now (GET streams and subscriptions), with keep-alive comments. */
  openStream(sessionId?: string): void {
    if (this.streaming || this.closed) return;
    this.streaming = true;
    this.raw.writeHead(200, { ...SSE_HEADERS, ...this.extraHeaders, ...(sessionId ? { "mcp-session-id": sessionId } : {}) });
    this.raw.flushHeaders();
    this.keepAlive = setInterval(() => {
      if (!this.closed) this.raw.write(":\n\n");
    }, 15_000);
    this.keepAlive.unref();
  }

  event(message: JsonRpcMessage): void {
    if (this.closed) return;
    if (!this.streaming) {
      this.streaming = true;
      this.raw.writeHead(200, { ...SSE_HEADERS, ...this.extraHeaders });
    }
    this.raw.write(sseMessage(message));
  }

  finish(message: JsonRpcResponse, sessionId?: string): void {
    if (this.closed) return;
    this.done = true;
    if (this.keepAlive) clearInterval(this.keepAlive);
    if (!this.expectsResponse) {
      this.raw.writeHead(202, this.extraHeaders).end();
      return;
    }
    if (this.streaming) {
      this.raw.end(sseFrame(serializeMessage(message)));
      return;
    }
    const body = serializeMessage(message);
    this.raw.writeHead(200, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), ...this.extraHeaders, ...(sessionId ? { "mcp-session-id": sessionId } : {}) });
    this.raw.end(body);
  }

  /** An error answer with the HTTP status the transport defines for it (when the stream has not started). */
  fail(error: unknown, id: JsonRpcId | null): void {
    if (this.closed) return;
    const rpc = error instanceof RpcError ? error : new RpcError(RpcCode.INTERNAL_ERROR, "internal error");
    if (this.streaming) return this.finish(rpc.toResponse(id));
    this.done = true;
    const body = JSON.stringify(errorResponse(id, rpc.code, rpc.message, rpc.data));
    this.raw.writeHead(rpc.httpStatus, { "content-type": "application/json", "content-length": String(Buffer.byteLength(body)), ...this.extraHeaders });
    this.raw.end(body);
  }
}
