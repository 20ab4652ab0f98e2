import { type JsonRpcId, type JsonRpcMessage, type JsonRpcRequest, type JsonRpcResponse, RpcCode, RpcError, isPlainObject, isRequest, isResponse } from "../jsonrpc.js";
import type { InboundMessage, RequestHooks } from "./types.js";

interface Pending {
  resolve: (response: JsonRpcResponse) => void;
  reject: (error: unknown) => void;
  hooks: RequestHooks;
  timer: NodeJS.Timeout;
  progressToken?: unknown;
}

/**
 * Request/response bookkeeping over a single message pipe (stdio, legacy HTTP+SSE),
 * where nothing on the wire says which request a notification belongs to: progress is
 * matched by its token, and other messages go to the only request in flight when there
 * is exactly one (the proxy runs one upstream conversation per caller, so nothing can
 * leak between callers either way).
 */
export class RpcPeer {
  private readonly pending = new Map<JsonRpcId, Pending>();
  private readonly byProgressToken = new Map<unknown, Pending>();
  onUnsolicited: (message: InboundMessage) => void = () => undefined;

  constructor(private readonly write: (message: JsonRpcMessage) => Promise<void>) {}

  get inFlight(): number {
    return this.pending.size;
  }

  request(message: JsonRpcRequest, hooks: RequestHooks): Promise<JsonRpcResponse> {
    return new Promise<JsonRpcResponse>((resolve, reject) => {
      if (this.pending.has(message.id)) return reject(new RpcError(RpcCode.INTERNAL_ERROR, "duplicate upstream request id"));
      const meta = isPlainObject(message.params?._meta) ? message.params._meta : undefined;
      const entry: Pending = {
        resolve,
        reject,
        hooks,
        progressToken: meta?.progressToken,
        timer: setTimeout(() => this.fail(message.id, new RpcError(RpcCode.UPSTREAM_TIMEOUT, `the MCP server did not answer ${message.method} within ${hooks.timeoutMs} ms`)), hooks.timeoutMs),
      };
      entry.timer.unref?.();
      this.pending.set(message.id, entry);
      if (entry.progressToken !== undefined) this.byProgressToken.set(entry.progressToken, entry);
      hooks.signal?.addEventListener("abort", () => this.fail(message.id, new RpcError(RpcCode.INTERNAL_ERROR, "request cancelled")), { once: true });
      this.write(message).catch((error: unknown) => this.fail(message.id, error));
    });
  }

  private settle(id: JsonRpcId): Pending | undefined {
    const entry = this.pending.get(id);
    if (!entry) return undefined;
    this.pending.delete(id);
    clearTimeout(entry.timer);
    if (entry.progressToken !== undefined) this.byProgressToken.delete(entry.progressToken);
    return entry;
  }

  private fail(id: JsonRpcId, error: unknown): void {
    this.settle(id)?.reject(error);
  }

  /** Routes one message read from the pipe. */
  receive(message: JsonRpcMessage): void {
    if (isResponse(message)) {
      if (message.id !== null) this.settle(message.id)?.resolve(message);
      return;
    }
    const inbound = message as InboundMessage;
    if (!isRequest(inbound) && inbound.method === "notifications/progress") {
      const token = inbound.params?.progressToken;
      const owner = token === undefined ? undefined : this.byProgressToken.get(token);
      if (owner) return owner.hooks.onRelated(inbound);
    }
    const related = inbound.method !== "notifications/progress" && !inbound.method.endsWith("/list_changed") && inbound.method !== "notifications/resources/updated" && this.pending.size === 1 ? [...this.pending.values()][0] : undefined;
    if (related) related.hooks.onRelated(inbound);
    else this.onUnsolicited(inbound);
  }

  /** Fails every request in flight (the pipe closed). */
  closeAll(reason: string): void {
    for (const id of [...this.pending.keys()]) this.fail(id, new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, reason));
  }
}
