import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { ResolvedProvider, ResolvedTarget } from "./registry.js";
import type { Endpoint } from "./types.js";

/** Response headers of a provider that are worth passing on (request ids for support tickets). */
export const FORWARDED_RESPONSE_HEADERS = ["content-type", "x-request-id", "request-id", "openai-processing-ms", "retry-after", "retry-after-ms"];
/** Request headers a caller may set for the provider (API version and beta features). */
const FORWARDED_REQUEST_HEADERS = ["anthropic-version", "anthropic-beta", "openai-beta"];

export interface UpstreamResponse {
  status: number;
  headers: IncomingMessage["headers"];
  body: IncomingMessage;
}

export class UpstreamError extends Error {
  constructor(
    message: string,
    /** timeout | connect | reset */
    readonly kind: "timeout" | "connect" | "reset" | "aborted",
  ) {
    super(message);
  }
}

const httpAgent = new HttpAgent({ keepAlive: true, maxSockets: 512, keepAliveMsecs: 30_000 });
const httpsAgent = new HttpsAgent({ keepAlive: true, maxSockets: 512, keepAliveMsecs: 30_000 });

export function upstreamUrl(provider: ResolvedProvider, endpoint: Endpoint, upstreamModel: string): string {
  const base = provider.baseUrl;
  switch (provider.type) {
    case "anthropic":
      return `${base}/v1/messages`;
    case "azure": {
      if (endpoint === "responses") return `${base}/openai/v1/responses`;
      const path = endpoint === "embeddings" ? "embeddings" : "chat/completions";
      return `${base}/openai/deployments/${encodeURIComponent(upstreamModel)}/${path}?api-version=${encodeURIComponent(provider.apiVersion)}`;
    }
    default:
      return `${base}/${endpoint === "chat" ? "chat/completions" : endpoint}`;
  }
}

function authHeaders(provider: ResolvedProvider): Record<string, string> {
  const key = provider.apiKey;
  if (!key) return {};
  if (provider.type === "anthropic") return { "x-api-key": key };
  if (provider.type === "azure") return { "api-key": key };
  return { authorization: `Bearer ${key}` };
}

/**
 * Sends one attempt to one target over a kept-alive connection. Resolves when the
 * provider's response headers arrive (the body is left to stream); rejects on
 * connection failure, on `timeoutMs` without headers, or when `signal` aborts.
 */
export function sendUpstream(target: ResolvedTarget, endpoint: Endpoint, body: Buffer, clientHeaders: Record<string, string | string[] | undefined>, stream: boolean, signal: AbortSignal): Promise<UpstreamResponse> {
  const provider = target.provider;
  const url = new URL(upstreamUrl(provider, endpoint, target.upstreamModel));
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "content-length": String(body.length),
    accept: stream ? "text/event-stream" : "application/json",
    ...authHeaders(provider),
  };
  for (const name of FORWARDED_REQUEST_HEADERS) {
    const value = clientHeaders[name];
    if (typeof value === "string") headers[name] = value;
  }
  if (provider.type === "anthropic" && !headers["anthropic-version"]) headers["anthropic-version"] = "2023-06-01";
  const secure = url.protocol === "https:";
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new UpstreamError("aborted before sending", "aborted"));
    const req = (secure ? httpsRequest : httpRequest)(url, { method: "POST", headers, agent: secure ? httpsAgent : httpAgent });
    let settled = false;
    const timer = setTimeout(() => {
      fail(new UpstreamError(`${target.id} sent no response headers within ${target.timeoutMs} ms`, "timeout"));
      req.destroy();
    }, target.timeoutMs);
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      reject(error);
    };
    const onAbort = () => {
      fail(new UpstreamError("the request was aborted", "aborted"));
      req.destroy();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    req.on("response", (res) => {
      if (settled) {
        res.destroy();
        return;
      }
      settled = true;
      clearTimeout(timer);
      // From here the caller owns the body; an abort destroys it.
      signal.removeEventListener("abort", onAbort);
      signal.addEventListener("abort", () => res.destroy(), { once: true });
      resolve({ status: res.statusCode ?? 502, headers: res.headers, body: res });
    });
    req.on("error", (error: NodeJS.ErrnoException) => {
      const kind = error.code === "ECONNREFUSED" || error.code === "ENOTFOUND" || error.code === "EAI_AGAIN" ? "connect" : "reset";
      fail(new UpstreamError(`${target.id}: ${error.code ?? ""} ${error.message}`.trim(), kind));
    });
    req.end(body);
  });
}

/** Reads a whole (small) response body, e.g. an error, bounded so a hostile upstream cannot exhaust memory. */
export async function readBody(body: IncomingMessage, limit = 64 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      body.destroy();
      throw new UpstreamError(`the provider's response is larger than ${limit} bytes`, "reset");
    }
    chunks.push(chunk as Buffer);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}
