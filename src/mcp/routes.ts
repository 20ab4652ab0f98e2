import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { checkRequestHeaders, paramHeadersOf, PROTOCOL_VERSION_META } from "./headers.js";
import { HttpReply } from "./http-reply.js";
import { type JsonRpcMessage, RpcCode, RpcError, errorResponse, metaOf, parseMessage } from "./jsonrpc.js";
import type { McpProxy } from "./proxy.js";
import type { CallerCredentials } from "./types.js";

export interface McpRouteDeps {
  proxy: McpProxy;
  authenticate(request: FastifyRequest): Promise<CallerCredentials>;
  /** RFC 9728 metadata URL named in WWW-Authenticate on 401 */
  resourceMetadataUrl?: (request: FastifyRequest) => string | undefined;
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(",") : value;
}

/** DNS-rebinding guard from the transport spec: a browser Origin must be this server's own. */
function originAllowed(request: FastifyRequest): boolean {
  const origin = header(request, "origin");
  if (origin === undefined || origin === "null") return origin === undefined;
  try {
    return new URL(origin).host === header(request, "host");
  } catch {
    return false;
  }
}

function isModern(message: JsonRpcMessage, request: FastifyRequest): boolean {
  const claimed = "method" in message ? metaOf(message as { params?: Record<string, unknown> })?.[PROTOCOL_VERSION_META] : undefined;
  const version = header(request, "mcp-protocol-version");
  return typeof claimed === "string" || (version !== undefined && version >= "2026");
}

/**
 * `/mcp/<server>`: Streamable HTTP for both protocol eras on one endpoint. A request
 * with the 2026-07-28 `_meta` envelope is served statelessly; an `initialize` starts a
 * 2025-era session and later messages name it with `Mcp-Session-Id`.
 */
export function registerMcpRoutes(app: FastifyInstance, deps: McpRouteDeps): void {
  const { proxy } = deps;
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "buffer", bodyLimit: proxy.limits.maxMessageBytes }, (_request, body, done) => done(null, body));
    scope.setErrorHandler((error, _request, reply) => {
      const tooLarge = (error as { code?: string }).code === "FST_ERR_CTP_BODY_TOO_LARGE";
      void reply
        .status(tooLarge ? 413 : 400)
        .type("application/json")
        .send(errorResponse(null, RpcCode.INVALID_REQUEST, tooLarge ? `the message is larger than ${proxy.limits.maxMessageBytes} bytes` : (error as Error).message));
    });

    const authenticate = async (request: FastifyRequest, reply: FastifyReply): Promise<CallerCredentials | undefined> => {
      try {
        return await deps.authenticate(request);
      } catch (error) {
        const metadata = deps.resourceMetadataUrl?.(request);
        if (metadata) void reply.header("www-authenticate", `Bearer resource_metadata="${metadata}"`);
        void reply.status(401).type("application/json").send(errorResponse(null, RpcCode.INVALID_REQUEST, `unauthenticated: ${(error as Error).message}`));
        return undefined;
      }
    };

    const post = async (request: FastifyRequest<{ Params: { server: string } }>, reply: FastifyReply) => {
      if (!originAllowed(request)) return reply.status(403).type("application/json").send(errorResponse(null, RpcCode.INVALID_REQUEST, "Origin not allowed"));
      const credentials = await authenticate(request, reply);
      if (!credentials) return reply;
      const { server } = request.params;
      let message: JsonRpcMessage;
      try {
        message = parseMessage((request.body as Buffer | undefined) ?? Buffer.alloc(0), proxy.limits.maxMessageBytes).message;
      } catch (error) {
        const rpc = error as RpcError;
        proxy.recordMalformed(request.params.server, { ...credentials, address: request.ip }, rpc);
        return reply.status(rpc.httpStatus).type("application/json").send(rpc.toResponse(null));
      }
      const expectsResponse = "method" in message && "id" in message;
      const id = "id" in message ? (message.id as string | number | null) : null;
      reply.hijack();
      const out = new HttpReply(reply.raw, expectsResponse);
      try {
        const sessionId = header(request, "mcp-session-id");
        if (sessionId !== undefined) {
          await proxy.handleLegacy(server, proxy.session(sessionId, server, credentials), message, credentials, out);
        } else if (isModern(message, request)) {
          if (expectsResponse) {
            const name = (message as { params?: { name?: unknown } }).params?.name;
            const decls = (message as { method: string }).method === "tools/call" && typeof name === "string" ? paramHeadersOf((await proxy.toolDefinition(server, name))?.inputSchema).headers : [];
            checkRequestHeaders(message as never, (n) => header(request, n), decls);
          }
          await proxy.handleModern(server, message, credentials, out);
        } else {
          await proxy.handleLegacy(server, undefined, message, credentials, out);
        }
      } catch (error) {
        if (!(error instanceof RpcError)) { request.log.error({ err: error }, "MCP proxy error"); if (process.env.MCP_DEBUG) console.error(error); }
        out.fail(error instanceof RpcError ? error : new RpcError(RpcCode.INTERNAL_ERROR, "internal error"), id);
      }
      return reply;
    };

    const get = async (request: FastifyRequest<{ Params: { server: string } }>, reply: FastifyReply) => {
      const sessionId = header(request, "mcp-session-id");
      if (sessionId === undefined) return reply.status(405).header("allow", "POST").type("application/json").send(errorResponse(null, RpcCode.INVALID_REQUEST, "no GET stream without a 2025-era session; 2026-07-28 clients use subscriptions/listen"));
      if (!originAllowed(request)) return reply.status(403).send();
      const credentials = await authenticate(request, reply);
      if (!credentials) return reply;
      let conversation;
      try {
        conversation = proxy.session(sessionId, request.params.server, credentials);
      } catch (error) {
        const rpc = error as RpcError;
        return reply.status(rpc.httpStatus).type("application/json").send(rpc.toResponse(null));
      }
      reply.hijack();
      const out = new HttpReply(reply.raw, true);
      out.openStream();
      proxy.attachListenStream(conversation, out);
      return reply;
    };

    const remove = async (request: FastifyRequest<{ Params: { server: string } }>, reply: FastifyReply) => {
      const sessionId = header(request, "mcp-session-id");
      if (sessionId === undefined) return reply.status(405).header("allow", "POST").send();
      const credentials = await authenticate(request, reply);
      if (!credentials) return reply;
      try {
        await proxy.deleteSession(sessionId, request.params.server, credentials);
      } catch (error) {
        const rpc = error instanceof RpcError ? error : new RpcError(RpcCode.INTERNAL_ERROR, "internal error", undefined, 500);
        return reply.status(rpc.httpStatus).type("application/json").send(rpc.toResponse(null));
      }
      return reply.status(200).send();
    };

    // `/mcp/<server>/mcp` too: some clients (the MCP Inspector CLI 0.15) insist on a path ending in /mcp.
    for (const path of ["/mcp/:server", "/mcp/:server/mcp"]) {
      scope.post(path, post);
      scope.get(path, get);
      scope.delete(path, remove);
    }
  });
}
