import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type JsonRpcRequest, RpcCode } from "../jsonrpc.js";
import { HttpUpstream } from "./http.js";
import type { InboundMessage } from "./types.js";

/** A Streamable HTTP server whose behaviour each test picks by tool name. */
let server: http.Server;
let url: string;
const open = new Set<http.ServerResponse>();

beforeAll(async () => {
  server = http.createServer((req, res) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (c: string) => (body += c));
    req.on("end", () => {
      const message = JSON.parse(body) as JsonRpcRequest;
      const name = (message.params?.name as string | undefined) ?? message.method;
      const answer = JSON.stringify({ jsonrpc: "2.0", id: message.id, result: { name, session: req.headers["mcp-session-id"] ?? null } });
      switch (name) {
        case "initialize":
          res.writeHead(200, { "content-type": "application/json", "mcp-session-id": "s-1" }).end(answer);
          return;
        case "json":
          res.writeHead(200, { "content-type": "application/json; charset=utf-8" }).end(answer);
          return;
        case "sse": {
          res.writeHead(200, { "content-type": "text/event-stream" });
          const progress = JSON.stringify({ jsonrpc: "2.0", method: "notifications/progress", params: { progressToken: 1, progress: 1 } });
          // split mid-line and mid-CRLF, as a network would
          const text = `event: message\r\ndata: ${progress}\r\n\r\nevent: message\ndata: ${answer}\n\n`;
          res.write(text.slice(0, 20));
          res.write(text.slice(20, text.indexOf("\r\n\r\n") + 3));
          res.end(text.slice(text.indexOf("\r\n\r\n") + 3));
          return;
        }
        case "hang":
          open.add(res);
          res.writeHead(200, { "content-type": "text/event-stream" });
          res.write(": waiting\n\n");
          return;
        case "die":
          res.writeHead(200, { "content-type": "text/event-stream" });
          res.write(": about to die\n\n", () => res.socket?.destroy());
          return;
        case "huge":
          res.writeHead(200, { "content-type": "application/json" }).end(`{"jsonrpc":"2.0","id":${JSON.stringify(message.id)},"result":{"x":"${"y".repeat(5000)}"}}`);
          return;
        case "gone":
          res.writeHead(404).end();
          return;
        default:
          res.writeHead(500).end("no");
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
});

afterAll(async () => {
  for (const res of open) res.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

let nextId = 1;
const call = (name: string): JsonRpcRequest => ({ jsonrpc: "2.0", id: nextId++, method: "tools/call", params: { name, arguments: {} } });
const upstream = (maxMessageBytes = 1 << 20) => new HttpUpstream({ url, era: "legacy", headers: { authorization: "Bearer upstream-only" }, maxMessageBytes });
const hooks = (extra: Partial<Parameters<HttpUpstream["request"]>[1]> = {}) => ({ onRelated: () => undefined, timeoutMs: 5000, ...extra });

describe("HttpUpstream", () => {
  it("takes the session from initialize and sends it with every later request", async () => {
    const u = upstream();
    await u.request({ jsonrpc: "2.0", id: 0, method: "initialize", params: {} }, hooks());
    expect(u.sessionId).toBe("s-1");
    expect((await u.request(call("json"), hooks())).result).toEqual({ name: "json", session: "s-1" });
  });

  it("reads an SSE answer cut anywhere, handing related messages over before the answer", async () => {
    const related: InboundMessage[] = [];
    const answer = await upstream().request(call("sse"), hooks({ onRelated: (m: InboundMessage) => related.push(m) }));
    expect(answer.result).toEqual({ name: "sse", session: null });
    expect(related.map((m) => m.method)).toEqual(["notifications/progress"]);
  });

  it("times out, is cancelled, or is stopped by close(), each with its own error", async () => {
    const u = upstream();
    await expect(u.request(call("hang"), hooks({ timeoutMs: 100 }))).rejects.toMatchObject({ code: RpcCode.UPSTREAM_TIMEOUT, message: expect.stringMatching(/did not answer tools\/call within 100 ms/) });
    const controller = new AbortController();
    const cancelled = u.request(call("hang"), hooks({ signal: controller.signal }));
    setTimeout(() => controller.abort(), 50);
    await expect(cancelled).rejects.toMatchObject({ code: RpcCode.INTERNAL_ERROR, message: "request cancelled" });
    const closing = u.request(call("hang"), hooks());
    setTimeout(() => void u.close(), 50);
    await expect(closing).rejects.toMatchObject({ code: RpcCode.UPSTREAM_UNAVAILABLE });
    await expect(u.request(call("json"), hooks())).rejects.toMatchObject({ code: RpcCode.UPSTREAM_UNAVAILABLE, message: /closed/ });
  });

  it("is cancelled through a handed-over stop without reading the signal, even when cancelled before it starts", async () => {
    const u = upstream();
    const unreadSignal = (onCancel: (stop: () => void) => void) => ({
      onRelated: () => undefined,
      timeoutMs: 5000,
      get signal(): AbortSignal {
        throw new Error("the signal was read");
      },
      onCancel,
    });
    let stop: (() => void) | undefined;
    const cancelled = u.request(call("hang"), unreadSignal((s) => (stop = s)));
    setTimeout(() => stop!(), 50);
    await expect(cancelled).rejects.toMatchObject({ code: RpcCode.INTERNAL_ERROR, message: "request cancelled" });
    await expect(u.request(call("hang"), unreadSignal((s) => s()))).rejects.toMatchObject({ message: "request cancelled" });
  });

  it("fails a call whose stream dies, is too large, or whose session is gone", async () => {
    await expect(upstream().request(call("die"), hooks())).rejects.toMatchObject({ code: RpcCode.UPSTREAM_UNAVAILABLE, message: /closed the stream before answering/ });
    await expect(upstream(1000).request(call("huge"), hooks())).rejects.toMatchObject({ code: RpcCode.UPSTREAM_UNAVAILABLE, message: /more than 1000 bytes/ });
    const u = upstream();
    await u.request({ jsonrpc: "2.0", id: 0, method: "initialize", params: {} }, hooks());
    await expect(u.request(call("gone"), hooks())).rejects.toMatchObject({ code: RpcCode.UPSTREAM_UNAVAILABLE, message: /ended the session/ });
    await expect(upstream().request(call("other"), hooks())).rejects.toMatchObject({ message: /HTTP 500 without a JSON-RPC response/ });
  });
});
