import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { type JsonRpcMessage, type JsonRpcNotification, type JsonRpcRequest, type JsonRpcResponse, RpcCode, RpcError, isResponse, parseMessage } from "../jsonrpc.js";
import { requestHeadersFor } from "../headers.js";
import { SseParser } from "../sse.js";
import type { Era, InboundMessage, RequestHooks, Upstream } from "./types.js";

export interface HttpUpstreamOptions {
  url: string;
  era: Era;
  /** credentials only the proxy holds, added to every request */
  headers: Record<string, string>;
  maxMessageBytes: number;
  /** TLS material when the upstream is Mandate itself (`mandate mcp connect`) or needs a private CA */
  tls?: { ca?: string; cert?: string; key?: string } | undefined;
  /** 2025-era: the protocol version negotiated at initialize, sent as MCP-Protocol-Version */
  protocolVersion?: string | undefined;
  agent?: http.Agent | undefined;
}

interface Exchange {
  status: number;
  headers: IncomingMessage["headers"];
  response: IncomingMessage;
}

const agents = new Map<string, http.Agent>();

/** Kept-alive connections per upstream origin (and TLS identity), shared by every session. */
function agentFor(url: URL, tls: HttpUpstreamOptions["tls"]): http.Agent {
  const key = `${url.protocol}//${url.host}|${tls?.cert ?? ""}|${tls?.ca ?? ""}`;
  let agent = agents.get(key);
  if (!agent) {
    agent = url.protocol === "https:" ? new https.Agent({ keepAlive: true, maxSockets: 256, ca: tls?.ca, cert: tls?.cert, key: tls?.key }) : new http.Agent({ keepAlive: true, maxSockets: 256 });
    agents.set(key, agent);
  }
  return agent;
}

/**
 * Streamable HTTP, client side. In the 2025 era it is a session (`Mcp-Session-Id`, a GET
 * stream for unsolicited messages, DELETE at the end); in the 2026-07-28 revision every
 * request is independent and carries the body-derived `Mcp-Method`/`Mcp-Name` headers.
 * Messages on a POST's SSE stream belong to that POST's request.
 */
export class HttpUpstream implements Upstream {
  private readonly url: URL;
  private readonly agent: http.Agent;
  sessionId: string | undefined;
  protocolVersion: string | undefined;
  private listening: IncomingMessage | undefined;
  private listenWanted = false;
  closed = false;
  onUnsolicited: (message: InboundMessage) => void = () => undefined;
  onClose: (reason: string) => void = () => undefined;
  private readonly inflight = new Set<AbortController>();

  constructor(private readonly options: HttpUpstreamOptions) {
    this.url = new URL(options.url);
    this.agent = options.agent ?? agentFor(this.url, options.tls);
    this.protocolVersion = options.protocolVersion;
  }

  private baseHeaders(): Record<string, string> {
    const headers: Record<string, string> = { ...this.options.headers, accept: "application/json, text/event-stream" };
    if (this.sessionId) headers["mcp-session-id"] = this.sessionId;
    if (this.protocolVersion && this.options.era === "legacy") headers["mcp-protocol-version"] = this.protocolVersion;
    return headers;
  }

  exchange(method: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal | undefined): Promise<Exchange> {
    return new Promise<Exchange>((resolve, reject) => {
      const request = (this.url.protocol === "https:" ? https : http).request(this.url, { method, headers: body === undefined ? headers : { ...headers, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) }, agent: this.agent, signal });
      request.on("response", (response) => resolve({ status: response.statusCode ?? 0, headers: response.headers, response }));
      request.on("error", (error) => reject(signal?.aborted ? new RpcError(RpcCode.INTERNAL_ERROR, "request cancelled") : new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `cannot reach the MCP server: ${error.message}`)));
      request.end(body);
    });
  }

  /** Reads a JSON or SSE body, handing each JSON-RPC message to `onMessage`. */
  async readMessages(exchange: Exchange, onMessage: (message: JsonRpcMessage) => void): Promise<void> {
    const type = String(exchange.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    const response = exchange.response;
    response.setEncoding("utf8");
    if (type === "text/event-stream") {
      const parser = new SseParser((event) => {
        if (event.event !== "message" || event.data === "") return;
        try {
          onMessage(parseMessage(event.data, this.options.maxMessageBytes).message);
        } catch {
          /* an unparseable event is skipped, as a stdio line would be */
        }
      }, this.options.maxMessageBytes);
      for await (const chunk of response) parser.push(chunk as string);
      return;
    }
    let text = "";
    for await (const chunk of response) {
      text += chunk as string;
      if (text.length > this.options.maxMessageBytes) {
        response.destroy();
        throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `the MCP server answered with more than ${this.options.maxMessageBytes} bytes`);
      }
    }
    if (type === "application/json" && text.length > 0) onMessage(parseMessage(text, this.options.maxMessageBytes).message);
  }

  async request(message: JsonRpcRequest, hooks: RequestHooks): Promise<JsonRpcResponse> {
    if (this.closed) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the upstream session is closed");
    const controller = new AbortController();
    this.inflight.add(controller);
    const abort = () => controller.abort();
    hooks.signal?.addEventListener("abort", abort, { once: true });
    const timer = setTimeout(abort, hooks.timeoutMs);
    timer.unref?.();
    try {
      const headers = { ...this.baseHeaders(), ...(this.options.era === "modern" ? requestHeadersFor(message) : {}), ...hooks.headers };
      const exchange = await this.exchange("POST", headers, JSON.stringify(message), controller.signal);
      const session = exchange.headers["mcp-session-id"];
      if (typeof session === "string" && this.options.era === "legacy" && message.method === "initialize") this.sessionId = session;
      if (exchange.status === 404 && this.sessionId) {
        exchange.response.resume();
        throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the MCP server ended the session");
      }
      let answer: JsonRpcResponse | undefined;
      let answered!: () => void;
      const gotAnswer = new Promise<void>((resolve) => (answered = resolve));
      const reading = this.readMessages(exchange, (inbound) => {
        if (isResponse(inbound)) {
          if (inbound.id === message.id && answer === undefined) {
            answer = inbound;
            answered();
          }
          return;
        }
        hooks.onRelated(inbound as InboundMessage);
      });
      await Promise.race([gotAnswer, reading]).catch((error: unknown) => {
        if (answer === undefined) throw error;
      });
      if (answer) {
        // The stream should end right after the answer; keep the connection for reuse, but not forever.
        const linger = setTimeout(() => exchange.response.destroy(), 10_000);
        linger.unref();
        void reading.catch(() => undefined).finally(() => clearTimeout(linger));
      }
      if (answer) return answer;
      if (exchange.status >= 400) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `the MCP server answered HTTP ${exchange.status} without a JSON-RPC response`, { httpStatus: exchange.status });
      throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the MCP server closed the stream before answering");
    } catch (error) {
      if (controller.signal.aborted && !hooks.signal?.aborted) throw new RpcError(RpcCode.UPSTREAM_TIMEOUT, `the MCP server did not answer ${message.method} within ${hooks.timeoutMs} ms`);
      if (hooks.signal?.aborted) throw new RpcError(RpcCode.INTERNAL_ERROR, "request cancelled");
      throw error;
    } finally {
      clearTimeout(timer);
      hooks.signal?.removeEventListener("abort", abort);
      this.inflight.delete(controller);
    }
  }

  async send(message: JsonRpcNotification | JsonRpcResponse): Promise<void> {
    if (this.closed) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the upstream session is closed");
    const exchange = await this.exchange("POST", this.baseHeaders(), JSON.stringify(message), undefined);
    exchange.response.resume();
    if (exchange.status >= 400 && exchange.status !== 405) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `the MCP server refused the message (HTTP ${exchange.status})`);
  }

  /** 2025 era: the standalone GET stream for unsolicited notifications and server→client requests. */
  listen(): void {
    if (this.options.era !== "legacy" || this.listenWanted || this.closed) return;
    this.listenWanted = true;
    void this.openListenStream(0);
  }

  private async openListenStream(attempt: number): Promise<void> {
    if (this.closed || attempt > 5) return;
    try {
      const exchange = await this.exchange("GET", { ...this.baseHeaders(), accept: "text/event-stream" }, undefined, undefined);
      if (exchange.status !== 200) {
        exchange.response.resume();
        return;
      }
      this.listening = exchange.response;
      await this.readMessages(exchange, (message) => {
        if (!isResponse(message)) this.onUnsolicited(message as InboundMessage);
      });
    } catch {
      /* reconnect below */
    }
    this.listening = undefined;
    if (!this.closed) setTimeout(() => void this.openListenStream(attempt + 1), 250 * 2 ** attempt).unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const controller of this.inflight) controller.abort();
    this.listening?.destroy();
    if (this.options.era === "legacy" && this.sessionId) {
      await this.exchange("DELETE", this.baseHeaders(), undefined, AbortSignal.timeout(2000))
        .then((e) => e.response.resume())
        .catch(() => undefined);
    }
    this.onClose("the session ended");
  }
}
