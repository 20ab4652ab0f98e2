import http from "node:http";
import https from "node:https";

/**
 * The benchmarks' MCP caller: one 2025-era Streamable HTTP session (initialize, initialized)
 * over its own kept-alive connections, and tools/call on it. Plain node:http, so the load
 * generator's own cost is small and the same for every target.
 */
export interface McpTarget {
  url: string;
  tls?: { ca: string; cert: string; key: string } | undefined;
  /** sent with every request, e.g. x-mandate-delegation */
  headers?: Record<string, string> | undefined;
}

export interface McpBenchClient {
  openSession(): Promise<string>;
  /** One tools/call; rejects unless the answer is HTTP 200 with a JSON-RPC result. */
  callTool(session: string, id: number, tool: string, args: Record<string, unknown>): Promise<void>;
  close(): void;
}

export function mcpBenchClient(target: McpTarget, maxSockets: number): McpBenchClient {
  const url = new URL(target.url);
  const client = url.protocol === "https:" ? https : http;
  const agent = url.protocol === "https:" ? new https.Agent({ keepAlive: true, maxSockets, ...target.tls }) : new http.Agent({ keepAlive: true, maxSockets });
  const post = (body: unknown, session?: string): Promise<{ status: number; session?: string; text: string }> => {
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const headers = { ...target.headers, "content-type": "application/json", accept: "application/json, text/event-stream", "content-length": Buffer.byteLength(payload), ...(session ? { "mcp-session-id": session, "mcp-protocol-version": "2025-06-18" } : {}) };
      const req = client.request(url, { method: "POST", agent, headers }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, session: res.headers["mcp-session-id"] as string | undefined, text }));
      });
      req.on("error", reject);
      req.end(payload);
    });
  };
  return {
    async openSession() {
      const init = await post({ jsonrpc: "2.0", id: 0, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "bench", version: "1" } } });
      if (init.status !== 200 || !init.session) throw new Error(`initialize failed: HTTP ${init.status} ${init.text.slice(0, 200)}`);
      await post({ jsonrpc: "2.0", method: "notifications/initialized" }, init.session);
      return init.session;
    },
    async callTool(session, id, tool, args) {
      const answer = await post({ jsonrpc: "2.0", id, method: "tools/call", params: { name: tool, arguments: args } }, session);
      if (answer.status !== 200 || !answer.text.includes('"result"')) throw new Error(`HTTP ${answer.status}: ${answer.text.slice(0, 200)}`);
    },
    close: () => agent.destroy(),
  };
}

/** The q-quantile of ascending-sorted samples (NaN when there are none). */
export function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}
