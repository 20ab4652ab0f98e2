import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { anthropicError, message, messageEvents, messagesAnswer } from "./anthropic-wire.js";
import { chatAnswer, chatChunks, chatCompletion, embeddingsResponse, modelsList, openAiError, responseEvents, responseObject, responsesAnswer } from "./openai-wire.js";
import { type FakeStep, FakeScript } from "./script.js";

export interface FakeRequest {
  method: string;
  path: string;
  headers: IncomingMessage["headers"];
  body: Record<string, unknown> | undefined;
  /** every byte the fake wrote in its response body */
  sent: Buffer;
  /** the caller closed the connection before the response was complete */
  aborted: boolean;
  /** the response was written to its end */
  completed: boolean;
}

export interface FakeProviderOptions {
  /** the key callers must present (Authorization: Bearer, x-api-key, or Azure's api-key) */
  apiKey?: string;
  models?: string[];
}

/**
 * A local stand-in for OpenAI, Azure OpenAI and Anthropic: the same paths, headers,
 * bodies, status codes and SSE event sequences, with scripted failures (429 with
 * Retry-After, 5xx, slow headers, hangs, stalls and drops mid-stream). Every request and
 * every byte sent back is recorded so tests can compare what a client received.
 */
export class FakeProvider {
  readonly script = new FakeScript();
  readonly requests: FakeRequest[] = [];
  private server: Server | undefined;
  private seq = 0;
  private readonly openSockets = new Set<import("node:net").Socket>();
  url = "";

  constructor(private readonly options: FakeProviderOptions = {}) {}

  async start(port = 0): Promise<string> {
    this.server = createServer({ keepAliveTimeout: 30_000 }, (req, res) => void this.handle(req, res));
    this.server.on("connection", (socket) => {
      this.openSockets.add(socket);
      socket.on("close", () => this.openSockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    for (const socket of this.openSockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Resolves once `n` requests have been received. */
  async waitForRequests(n: number, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.requests.length < n) {
      if (Date.now() > deadline) throw new Error(`fake provider saw ${this.requests.length} requests, expected ${n}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  reset(): void {
    this.requests.length = 0;
    this.script.clear();
    this.seq = 0;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const url = new URL(req.url ?? "/", "http://fake");
    let body: Record<string, unknown> | undefined;
    try {
      body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString("utf8")) as Record<string, unknown>) : undefined;
    } catch {
      body = undefined;
    }
    const record: FakeRequest = { method: req.method ?? "GET", path: url.pathname + url.search, headers: req.headers, body, sent: Buffer.alloc(0), aborted: false, completed: false };
    this.requests.push(record);
    const sent: Buffer[] = [];
    const write = (data: string | Buffer): boolean => {
      const buffer = typeof data === "string" ? Buffer.from(data) : data;
      sent.push(buffer);
      record.sent = Buffer.concat(sent);
      return res.write(buffer);
    };
    res.on("close", () => {
      if (!res.writableFinished) record.aborted = true;
    });
    const seq = ++this.seq;
    const step = this.script.next();
    const anthropic = url.pathname === "/v1/messages";
    const route = this.route(url.pathname);
    if (!route) return this.sendJson(res, record, write, 404, anthropic ? anthropicError(404) : { error: { message: `Invalid URL (${req.method} ${url.pathname})`, type: "invalid_request_error", param: null, code: null } });
    if (!this.authorized(req, route.kind)) return this.sendJson(res, record, write, 401, route.kind === "anthropic" ? anthropicError(401) : openAiError(401));
    if (step.delayMs) await new Promise((r) => setTimeout(r, step.delayMs));
    if (step.until) await step.until;
    if (step.hang) return; // the caller gives up; nothing is ever sent
    if (step.status && step.status >= 400) {
      const headers: Record<string, string> = step.retryAfter !== undefined ? { "retry-after": String(step.retryAfter) } : {};
      return this.sendJson(res, record, write, step.status, route.kind === "anthropic" ? anthropicError(step.status) : openAiError(step.status), headers);
    }
    if (route.endpoint !== "models" && body === undefined) return this.sendJson(res, record, write, 400, route.kind === "anthropic" ? anthropicError(400) : openAiError(400));
    const b = body ?? {};
    const model = route.deployment ?? String(b.model ?? "unknown");
    const stream = b.stream === true;
    const suffix = String(seq).padStart(6, "0");
    switch (route.endpoint) {
      case "models":
        return this.sendJson(res, record, write, 200, modelsList(this.options.models ?? ["gpt-4.1-mini", "gpt-4o"]));
      case "embeddings":
        return this.sendJson(res, record, write, 200, embeddingsResponse(b, model, step));
      case "chat": {
        const { answer, promptTokens } = chatAnswer(b, step, seq);
        const id = `chatcmpl-fake${suffix}`;
        if (!stream) return this.sendJson(res, record, write, 200, chatCompletion(model, id, answer, promptTokens, step));
        const includeUsage = (b.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
        const events = chatChunks(model, id, answer, promptTokens, step, includeUsage).map((data) => `data: ${data}\n\n`);
        events.push("data: [DONE]\n\n");
        return this.sendEvents(res, record, write, events, step, { "x-request-id": `req_fake${suffix}` });
      }
      case "responses": {
        const { answer, inputTokens } = responsesAnswer(b, step, seq);
        const id = `resp_fake${suffix}`;
        if (!stream) return this.sendJson(res, record, write, 200, responseObject(b, model, id, answer, inputTokens, step, seq, "completed"));
        const events = responseEvents(b, model, id, answer, inputTokens, step, seq).map(([type, data]) => `event: ${type}\ndata: ${data}\n\n`);
        return this.sendEvents(res, record, write, events, step, { "x-request-id": `req_fake${suffix}` });
      }
      case "messages": {
        const { answer, inputTokens } = messagesAnswer(b, step, seq);
        const id = `msg_fake${suffix}`;
        if (!stream) return this.sendJson(res, record, write, 200, message(model, id, answer, inputTokens, step), { "request-id": `req_fake${suffix}` });
        const events = messageEvents(model, id, answer, inputTokens, step).map(([type, data]) => `event: ${type}\ndata: ${data}\n\n`);
        return this.sendEvents(res, record, write, events, step, { "request-id": `req_fake${suffix}` });
      }
    }
  }

  private route(path: string): { kind: "openai" | "azure" | "anthropic"; endpoint: "chat" | "responses" | "embeddings" | "models" | "messages"; deployment?: string } | undefined {
    const openai: Record<string, "chat" | "responses" | "embeddings" | "models"> = { "/v1/chat/completions": "chat", "/v1/responses": "responses", "/v1/embeddings": "embeddings", "/v1/models": "models" };
    if (openai[path]) return { kind: "openai", endpoint: openai[path] };
    if (path === "/v1/messages") return { kind: "anthropic", endpoint: "messages" };
    if (path === "/openai/v1/responses") return { kind: "azure", endpoint: "responses" };
    const azure = /^\/openai\/deployments\/([^/]+)\/(chat\/completions|embeddings)$/.exec(path);
    if (azure) return { kind: "azure", endpoint: azure[2] === "embeddings" ? "embeddings" : "chat", deployment: decodeURIComponent(azure[1]!) };
    return undefined;
  }

  private authorized(req: IncomingMessage, kind: "openai" | "azure" | "anthropic"): boolean {
    const key = this.options.apiKey;
    if (kind === "anthropic") {
      if (!req.headers["anthropic-version"]) return false;
      // The API takes the key as x-api-key or, as current SDKs send it, as a bearer token.
      return key === undefined || req.headers["x-api-key"] === key || req.headers.authorization === `Bearer ${key}`;
    }
    if (key === undefined) return true;
    if (kind === "azure") return req.headers["api-key"] === key;
    return req.headers.authorization === `Bearer ${key}`;
  }

  private sendJson(res: ServerResponse, record: FakeRequest, write: (d: string) => boolean, status: number, body: unknown, headers: Record<string, string> = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { "content-type": "application/json", "content-length": String(Buffer.byteLength(text)), ...headers });
    write(text);
    res.end();
    record.completed = true;
  }

  private async sendEvents(res: ServerResponse, record: FakeRequest, write: (d: string) => boolean, events: string[], step: FakeStep, headers: Record<string, string>): Promise<void> {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache", connection: "keep-alive", ...headers });
    for (let i = 0; i < events.length; i++) {
      if (res.destroyed) return;
      if (step.stallAfterEvents !== undefined && i === step.stallAfterEvents) return; // keeps the connection open, sends nothing more
      if (step.dropAfterEvents !== undefined && i === step.dropAfterEvents) {
        res.socket?.destroy();
        return;
      }
      write(events[i]!);
      // Each event leaves in its own write and its own turn, as a model's tokens do.
      await new Promise((r) => (step.eventDelayMs ? setTimeout(r, step.eventDelayMs) : setImmediate(r)));
    }
    res.end();
    record.completed = true;
  }
}
