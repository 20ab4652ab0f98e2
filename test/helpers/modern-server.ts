import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";
import { McpServer, acceptedContent, createMcpHandler, inputRequired } from "@modelcontextprotocol/server";
import { z } from "zod";

/** Serves a web-standard fetch handler on node:http (what `@modelcontextprotocol/node` would do). */
function nodeAdapter(fetchHandler: (request: Request) => Promise<Response>) {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers.set(k, v);
    const controller = new AbortController();
    res.on("close", () => controller.abort());
    const body = chunks.length ? Buffer.concat(chunks) : undefined;
    const response = await fetchHandler(new Request(`http://${req.headers.host}${req.url}`, { method: req.method, headers, ...(body && req.method !== "GET" ? { body } : {}), signal: controller.signal }));
    res.writeHead(response.status, Object.fromEntries(response.headers.entries()));
    if (!response.body) return res.end();
    Readable.fromWeb(response.body as never).on("error", () => res.end()).pipe(res);
  };
}

export interface ModernServerOptions {
  description?: () => string;
}

/**
 * A 2026-07-28 MCP server built with the official v2 server SDK (dual-era:
 * `createMcpHandler` also serves 2025-era clients statelessly).
 */
export async function startModernServer(options: ModernServerOptions = {}): Promise<{ url: string; close(): Promise<void> }> {
  const handler = createMcpHandler(() => {
    const server = new McpServer({ name: "modern-test-server", version: "2.0.0" }, { capabilities: { tools: { listChanged: true } } });
    server.registerTool("echo", { description: options.description?.() ?? "Echoes its input back.", inputSchema: z.object({ text: z.string() }) }, async ({ text }) => ({ content: [{ type: "text", text: `echo: ${text}` }] }));
    server.registerTool("secret-tool", { description: "Something agents may not call.", inputSchema: z.object({}) }, async () => ({ content: [{ type: "text", text: "should never be seen" }] }));
    server.registerTool("confirm", { description: "Asks the user for a name before answering.", inputSchema: z.object({ action: z.string() }) }, async ({ action }, ctx) => {
      const answer = acceptedContent<{ name: string }>(ctx.mcpReq.inputResponses, "who");
      if (!answer) return inputRequired({ inputRequests: { who: inputRequired.elicit({ message: `Who approves ${action}?`, requestedSchema: { type: "object", properties: { name: { type: "string" } }, required: ["name"] } }) } });
      return { content: [{ type: "text", text: `${action} approved by ${answer.name}` }] };
    });
    server.registerTool("leaky", { description: "Returns a credential by mistake.", inputSchema: z.object({}) }, async () => ({ content: [{ type: "text", text: "config: AKIAABCDEFGHIJKLMNOP and token ghp_abcdefghijklmnopqrstuvwxyz0123456789" }] }));
    return server;
  });
  const server = createServer(nodeAdapter(handler.fetch));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    async close() {
      await handler.close();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
