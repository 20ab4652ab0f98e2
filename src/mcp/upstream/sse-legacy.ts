import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { type JsonRpcMessage, type JsonRpcNotification, type JsonRpcRequest, type JsonRpcResponse, RpcCode, RpcError, parseMessage } from "../jsonrpc.js";
import { SseParser } from "../sse.js";
import { RpcPeer } from "./rpc-peer.js";
import type { InboundMessage, RequestHooks, Upstream } from "./types.js";

/**
 * The deprecated HTTP+SSE transport (protocol 2024-11-05): a GET stream whose first
 * event names the endpoint to POST messages to; every answer comes back on the stream.
 */
export class SseLegacyUpstream implements Upstream {
  private readonly peer: RpcPeer;
  private stream: IncomingMessage | undefined;
  private endpoint: URL | undefined;
  private ready: Promise<void>;
  closed = false;
  onUnsolicited: (message: InboundMessage) => void = () => undefined;
  onClose: (reason: string) => void = () => undefined;

  constructor(private readonly options: { url: string; headers: Record<string, string>; maxMessageBytes: number }) {
    this.peer = new RpcPeer((message) => this.post(message));
    this.peer.onUnsolicited = (message) => this.onUnsolicited(message);
    this.ready = this.connect();
    this.ready.catch(() => undefined);
  }

  private client(url: URL) {
    return url.protocol === "https:" ? https : http;
  }

  private connect(): Promise<void> {
    const url = new URL(this.options.url);
    return new Promise<void>((resolve, reject) => {
      const request = this.client(url).request(url, { method: "GET", headers: { ...this.options.headers, accept: "text/event-stream" } });
      request.on("error", (error) => {
        reject(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `cannot reach the MCP server: ${error.message}`));
        this.shutdown(`the SSE stream failed: ${error.message}`);
      });
      request.on("response", (response) => {
        if (response.statusCode !== 200) {
          response.resume();
          reject(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `the MCP server refused the SSE stream (HTTP ${response.statusCode})`));
          return;
        }
        this.stream = response;
        response.setEncoding("utf8");
        const parser = new SseParser((event) => {
          if (event.event === "endpoint") {
            try {
              const endpoint = new URL(event.data, url);
              if (endpoint.origin !== url.origin) throw new Error("the endpoint is on another origin");
              this.endpoint = endpoint;
              resolve();
            } catch (error) {
              reject(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `bad endpoint event: ${(error as Error).message}`));
            }
            return;
          }
          if (event.event !== "message") return;
          try {
            this.peer.receive(parseMessage(event.data, this.options.maxMessageBytes).message);
          } catch {
            /* skip unparseable events */
          }
        }, this.options.maxMessageBytes);
        response.on("data", (chunk: string) => {
          try {
            parser.push(chunk);
          } catch (error) {
            response.destroy(error as Error);
          }
        });
        response.on("close", () => this.shutdown("the MCP server closed the SSE stream"));
      });
      request.end();
    });
  }

  private async post(message: JsonRpcMessage): Promise<void> {
    await this.ready;
    const endpoint = this.endpoint!;
    const body = JSON.stringify(message);
    await new Promise<void>((resolve, reject) => {
      const request = this.client(endpoint).request(endpoint, { method: "POST", headers: { ...this.options.headers, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) } }, (response) => {
        response.resume();
        if ((response.statusCode ?? 500) >= 400) reject(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `the MCP server refused the message (HTTP ${response.statusCode})`));
        else resolve();
      });
      request.on("error", (error) => reject(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `cannot reach the MCP server: ${error.message}`)));
      request.end(body);
    });
  }

  request(message: JsonRpcRequest, hooks: RequestHooks): Promise<JsonRpcResponse> {
    if (this.closed) return Promise.reject(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the SSE stream is closed"));
    return this.peer.request(message, hooks);
  }

  send(message: JsonRpcNotification | JsonRpcResponse): Promise<void> {
    return this.post(message);
  }

  private shutdown(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.peer.closeAll(reason);
    this.onClose(reason);
  }

  async close(): Promise<void> {
    this.stream?.destroy();
    this.shutdown("the session ended");
  }
}
