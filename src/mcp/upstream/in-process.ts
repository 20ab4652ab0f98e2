import { InMemoryTransport, type McpServer } from "@modelcontextprotocol/server";
import type { JsonRpcMessage, JsonRpcNotification, JsonRpcRequest, JsonRpcResponse } from "../jsonrpc.js";
import { RpcCode, RpcError } from "../jsonrpc.js";
import { RpcPeer } from "./rpc-peer.js";
import type { InboundMessage, RequestHooks, Upstream } from "./types.js";

/**
 * A built-in MCP server hosted in the proxy's own process (official SDK server on an
 * in-memory transport pair), one per conversation: the proxy's gate, audit and id
 * remapping apply to it exactly as to a spawned stdio server.
 */
export class InProcessUpstream implements Upstream {
  private readonly peer: RpcPeer;
  private readonly local: InMemoryTransport;
  closed = false;
  onUnsolicited: (message: InboundMessage) => void = () => undefined;
  onClose: (reason: string) => void = () => undefined;

  private constructor(
    local: InMemoryTransport,
    private readonly server: { close(): Promise<void> },
  ) {
    this.local = local;
    this.peer = new RpcPeer(async (message) => {
      if (this.closed) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the built-in MCP server is closed");
      await this.local.send(message as never);
    });
    this.peer.onUnsolicited = (message) => this.onUnsolicited(message);
    local.onmessage = (message) => this.peer.receive(message as unknown as JsonRpcMessage);
    local.onclose = () => this.shutdown("the built-in MCP server closed");
  }

  /** Connects `server` (its tools already registered) to a fresh in-memory pair. */
  static async start(server: { server: McpServer; close(): Promise<void> }): Promise<InProcessUpstream> {
    const [local, remote] = InMemoryTransport.createLinkedPair();
    const upstream = new InProcessUpstream(local, server);
    await server.server.connect(remote);
    await local.start();
    return upstream;
  }

  request(message: JsonRpcRequest, hooks: RequestHooks): Promise<JsonRpcResponse> {
    if (this.closed) return Promise.reject(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the built-in MCP server is closed"));
    return this.peer.request(message, hooks);
  }

  async send(message: JsonRpcNotification | JsonRpcResponse): Promise<void> {
    if (this.closed) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the built-in MCP server is closed");
    await this.local.send(message as never);
  }

  private shutdown(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.peer.closeAll(reason);
    this.onClose(reason);
  }

  async close(): Promise<void> {
    this.shutdown("the session ended");
    await this.server.close().catch(() => undefined);
  }
}
