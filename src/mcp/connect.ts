import { stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Readable, Writable } from "node:stream";
import { CREDENTIAL_FILES, readCredentials } from "../agent/index.js";
import { MandateError } from "../errors/index.js";
import { PROTOCOL_VERSION_META } from "./headers.js";
import { type JsonRpcMessage, type JsonRpcRequest, RpcCode, RpcError, errorResponse, metaOf, parseMessage } from "./jsonrpc.js";
import { HttpUpstream } from "./upstream/http.js";

export interface ConnectOptions {
  server: string;
  /** the agent's credential directory, as `mandate daemon --out` keeps it */
  credentialDir: string;
  /** defaults to the control plane the credentials came from */
  authServer?: string | undefined;
  delegationToken?: string | undefined;
  input: Readable;
  output: Writable;
  maxMessageBytes?: number;
  log?: (line: string) => void;
}

/**
 * `mandate mcp connect`: a stdio MCP server for desktop and CLI clients that relays
 * every message to the proxy over mTLS with the local agent's X509-SVID, so the client
 * needs no credentials of its own. The SVID is re-read when the daemon renews it.
 */
export async function runMcpConnect(options: ConnectOptions): Promise<void> {
  const dir = resolve(options.credentialDir);
  const maxMessageBytes = options.maxMessageBytes ?? 4 * 1024 * 1024;
  const log = options.log ?? (() => undefined);
  let serial = "";
  let legacy: HttpUpstream | undefined;
  let modern: HttpUpstream | undefined;
  let mtime = 0;

  const write = (message: JsonRpcMessage) => options.output.write(`${JSON.stringify(message)}\n`);

  const upstreams = async (): Promise<{ legacy: HttpUpstream; modern: HttpUpstream }> => {
    const state = await stat(join(dir, CREDENTIAL_FILES.state)).catch(() => undefined);
    if (!state) throw new MandateError("NOT_FOUND", `no agent credentials in ${dir}; run \`mandate daemon --out ${dir}\` first`);
    if (legacy && modern && state.mtimeMs === mtime) return { legacy, modern };
    const credentials = await readCredentials(dir);
    if (!credentials) throw new MandateError("NOT_FOUND", `no agent credentials in ${dir}`);
    mtime = state.mtimeMs;
    if (legacy && modern && credentials.state.serial === serial) return { legacy, modern };
    serial = credentials.state.serial;
    const base = options.authServer ?? credentials.state.authServer;
    const url = new URL(`/mcp/${encodeURIComponent(options.server)}`, base).toString();
    const headers: Record<string, string> = options.delegationToken ? { "x-mandate-delegation": options.delegationToken } : {};
    const tls = { ca: credentials.bundlePem, cert: credentials.svidPem, key: credentials.keyPem };
    const next = {
      legacy: new HttpUpstream({ url, era: "legacy", headers, maxMessageBytes, tls }),
      modern: new HttpUpstream({ url, era: "modern", headers, maxMessageBytes, tls }),
    };
    // A renewed SVID keeps the same SPIFFE ID, so the 2025-era session carries over.
    if (legacy) {
      next.legacy.sessionId = legacy.sessionId;
      next.legacy.protocolVersion = legacy.protocolVersion;
    }
    next.legacy.onUnsolicited = (message) => write(message);
    legacy = next.legacy;
    modern = next.modern;
    return next;
  };

  const relay = async (message: JsonRpcMessage) => {
    const { legacy: l, modern: m } = await upstreams();
    if ("method" in message && "id" in message) {
      const request = message as JsonRpcRequest;
      const upstream = typeof metaOf(request)?.[PROTOCOL_VERSION_META] === "string" ? m : l;
      const answer = await upstream
        .request(request, { onRelated: (related) => write(related), timeoutMs: 2 ** 31 - 1 })
        .catch((error: unknown) => errorResponse(request.id, error instanceof RpcError ? error.code : RpcCode.INTERNAL_ERROR, (error as Error).message));
      if (request.method === "initialize" && "result" in answer) {
        const version = (answer.result as { protocolVersion?: unknown }).protocolVersion;
        if (typeof version === "string") l.protocolVersion = version;
      }
      write(answer);
      return;
    }
    await l.send(message as never).catch((error: unknown) => log(`relaying a message failed: ${(error as Error).message}`));
    if ("method" in message && message.method === "notifications/initialized") l.listen();
  };

  let buffered = "";
  const pending = new Set<Promise<void>>();
  await new Promise<void>((resolveDone) => {
    options.input.setEncoding("utf8");
    options.input.on("data", (chunk: string) => {
      buffered += chunk;
      let index: number;
      while ((index = buffered.indexOf("\n")) !== -1) {
        const line = buffered.slice(0, index).trim();
        buffered = buffered.slice(index + 1);
        if (!line) continue;
        let message: JsonRpcMessage;
        try {
          message = parseMessage(line, maxMessageBytes).message;
        } catch (error) {
          write((error as RpcError).toResponse(null));
          continue;
        }
        const task = relay(message).catch((error: unknown) => {
          log(`error: ${(error as Error).message}`);
          if ("id" in message && "method" in message) write(errorResponse((message as JsonRpcRequest).id, RpcCode.UPSTREAM_UNAVAILABLE, (error as Error).message));
        });
        pending.add(task);
        void task.finally(() => pending.delete(task));
      }
      if (buffered.length > maxMessageBytes) {
        write(errorResponse(null, RpcCode.INVALID_REQUEST, `a message is larger than ${maxMessageBytes} bytes`));
        buffered = "";
      }
    });
    options.input.on("end", () => resolveDone());
    options.input.on("close", () => resolveDone());
  });
  await Promise.allSettled([...pending]);
  await legacy?.close();
}
