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

/** Why a request was stopped before its answer, and what the caller is told. */
type Stop = "timeout" | "cancelled" | "closed";

/**
 * Hooks with a direct way to cancel: the caller hands over `stop` instead of the request
 * listening on `signal`. An AbortSignal made and listened on per call costs about as
 * much CPU as the rest of the request's own bookkeeping; `signal` is then not read.
 */
export interface CancellableHooks extends RequestHooks {
  onCancel?(stop: () => void): void;
}

/**
 * Reads a JSON or SSE body with plain listeners (async iteration costs a promise per
 * chunk), handing each JSON-RPC message to `onMessage`. `done` runs once: when the body
 * ended, failed, or was cut off for size.
 */
function readBody(response: IncomingMessage, maxBytes: number, onMessage: (message: JsonRpcMessage) => void, done: (error?: Error) => void): void {
  const type = String(response.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  let finished = false;
  const finish = (error?: Error) => {
    if (finished) return;
    finished = true;
    done(error);
  };
  response.setEncoding("utf8");
  const cutOff = (why: string) => new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `the MCP server closed the stream before answering (${why})`);
  response.on("error", (error) => finish(cutOff(error.message)));
  response.on("close", () => finish(response.complete ? undefined : cutOff("cut off")));
  if (type === "text/event-stream") {
    const parser = new SseParser((event) => {
      if (event.event !== "message" || event.data === "") return;
      try {
        onMessage(parseMessage(event.data, maxBytes).message);
      } catch {
        /* an unparseable event is skipped, as a stdio line would be */
      }
    }, maxBytes);
    response.on("data", (chunk: string) => {
      try {
        parser.push(chunk);
      } catch (error) {
        response.destroy();
        finish(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `the MCP server sent too much: ${(error as Error).message}`));
      }
    });
    response.on("end", () => finish());
    return;
  }
  let text = "";
  response.on("data", (chunk: string) => {
    text += chunk;
    if (text.length > maxBytes) {
      response.destroy();
      finish(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `the MCP server answered with more than ${maxBytes} bytes`));
    }
  });
  response.on("end", () => {
    if (type === "application/json" && text.length > 0) {
      try {
        onMessage(parseMessage(text, maxBytes).message);
      } catch (error) {
        return finish(error as Error);
      }
    }
    finish();
  });
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
  private readonly client: typeof http | typeof https;
  /** what every request is addressed to, worked out once rather than from the URL per request */
  private readonly target: http.RequestOptions;
  sessionId: string | undefined;
  protocolVersion: string | undefined;
  private listening: IncomingMessage | undefined;
  private listenWanted = false;
  closed = false;
  onUnsolicited: (message: InboundMessage) => void = () => undefined;
  onClose: (reason: string) => void = () => undefined;
  /** stops each in-flight request; close() runs them all */
  private readonly inflight = new Set<() => void>();
  private base: Record<string, string> | undefined;
  private baseSession: string | undefined;
  private baseVersion: string | undefined;

  constructor(private readonly options: HttpUpstreamOptions) {
    this.url = new URL(options.url);
    this.agent = options.agent ?? agentFor(this.url, options.tls);
    this.client = this.url.protocol === "https:" ? https : http;
    this.target = { protocol: this.url.protocol, hostname: this.url.hostname.replace(/^\[|\]$/g, ""), port: this.url.port || undefined, path: this.url.pathname + this.url.search, agent: this.agent };
    if (this.url.username || this.url.password) this.target.auth = `${decodeURIComponent(this.url.username)}:${decodeURIComponent(this.url.password)}`;
    this.protocolVersion = options.protocolVersion;
  }

  /** The headers every request carries; recomputed only when the session or version changes. */
  private baseHeaders(): Record<string, string> {
    if (this.base && this.baseSession === this.sessionId && this.baseVersion === this.protocolVersion) return this.base;
    const headers: Record<string, string> = { ...this.options.headers, accept: "application/json, text/event-stream" };
    if (this.sessionId) headers["mcp-session-id"] = this.sessionId;
    if (this.protocolVersion && this.options.era === "legacy") headers["mcp-protocol-version"] = this.protocolVersion;
    this.base = headers;
    this.baseSession = this.sessionId;
    this.baseVersion = this.protocolVersion;
    return headers;
  }

  exchange(method: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal | undefined): Promise<Exchange> {
    return new Promise<Exchange>((resolve, reject) => {
      const request = this.client.request({ ...this.target, method, headers: body === undefined ? headers : { ...headers, "content-type": "application/json", "content-length": String(Buffer.byteLength(body)) }, signal });
      request.on("response", (response) => resolve({ status: response.statusCode ?? 0, headers: response.headers, response }));
      request.on("error", (error) => reject(signal?.aborted ? new RpcError(RpcCode.INTERNAL_ERROR, "request cancelled") : new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `cannot reach the MCP server: ${error.message}`)));
      request.end(body);
    });
  }

  /** Reads a JSON or SSE body to its end, handing each JSON-RPC message to `onMessage`. */
  readMessages(exchange: Exchange, onMessage: (message: JsonRpcMessage) => void): Promise<void> {
    return new Promise((resolve, reject) => readBody(exchange.response, this.options.maxMessageBytes, onMessage, (error) => (error ? reject(error) : resolve())));
  }

  /**
   * One POST and its answer. A timer and `request.destroy()` carry the timeout and
   * cancellation: giving http.request an AbortSignal costs more per request than the
   * rest of this method together.
   */
  request(message: JsonRpcRequest, hooks: CancellableHooks): Promise<JsonRpcResponse> {
    if (this.closed) return Promise.reject(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the upstream session is closed"));
    const signal = hooks.onCancel ? undefined : hooks.signal;
    if (signal?.aborted) return Promise.reject(new RpcError(RpcCode.INTERNAL_ERROR, "request cancelled"));
    return new Promise<JsonRpcResponse>((resolve, reject) => {
      const body = JSON.stringify(message);
      const headers: Record<string, string> = { ...this.baseHeaders() };
      if (this.options.era === "modern") Object.assign(headers, requestHeadersFor(message));
      if (hooks.headers) Object.assign(headers, hooks.headers);
      headers["content-type"] = "application/json";
      headers["content-length"] = String(Buffer.byteLength(body));
      const request = this.client.request({ ...this.target, method: "POST", headers });
      let answer: JsonRpcResponse | undefined;
      let settled = false;
      let linger: NodeJS.Timeout | undefined;
      const settle = (error: Error | undefined) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener("abort", cancel);
        this.inflight.delete(close);
        if (error) reject(error);
        else resolve(answer!);
      };
      const stop = (why: Stop) => {
        if (settled) return;
        request.destroy();
        settle(
          why === "timeout"
            ? new RpcError(RpcCode.UPSTREAM_TIMEOUT, `the MCP server did not answer ${message.method} within ${hooks.timeoutMs} ms`)
            : why === "cancelled"
              ? new RpcError(RpcCode.INTERNAL_ERROR, "request cancelled")
              : new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the upstream session is closed"),
        );
      };
      const cancel = () => stop("cancelled");
      const close = () => stop("closed");
      const timer = setTimeout(stop, hooks.timeoutMs, "timeout");
      timer.unref();
      this.inflight.add(close);
      if (hooks.onCancel) hooks.onCancel(cancel);
      else signal?.addEventListener("abort", cancel, { once: true });
      request.on("error", (error) => settle(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `cannot reach the MCP server: ${error.message}`)));
      request.on("response", (response) => {
        const status = response.statusCode ?? 0;
        const session = response.headers["mcp-session-id"];
        if (typeof session === "string" && this.options.era === "legacy" && message.method === "initialize") this.sessionId = session;
        if (status === 404 && this.sessionId) {
          response.resume();
          return settle(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the MCP server ended the session"));
        }
        readBody(
          response,
          this.options.maxMessageBytes,
          (inbound) => {
            if (isResponse(inbound)) {
              if (inbound.id === message.id && answer === undefined && !settled) {
                answer = inbound;
                settle(undefined);
                // The stream should end right after the answer; keep the connection for reuse, but not forever.
                if (!response.complete) {
                  linger = setTimeout(() => response.destroy(), 10_000);
                  linger.unref();
                }
              }
              return;
            }
            hooks.onRelated(inbound as InboundMessage);
          },
          (error) => {
            clearTimeout(linger);
            if (settled) return;
            if (error) return settle(error);
            if (status >= 400) return settle(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `the MCP server answered HTTP ${status} without a JSON-RPC response`, { httpStatus: status }));
            settle(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the MCP server closed the stream before answering"));
          },
        );
      });
      request.end(body);
    });
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
    for (const stop of this.inflight) stop();
    this.listening?.destroy();
    if (this.options.era === "legacy" && this.sessionId) {
      await this.exchange("DELETE", this.baseHeaders(), undefined, AbortSignal.timeout(2000))
        .then((e) => e.response.resume())
        .catch(() => undefined);
    }
    this.onClose("the session ended");
  }
}
