import type { UpstreamSpec } from "../catalog.js";
import { CLIENT_CAPABILITIES_META, CLIENT_INFO_META, PROTOCOL_VERSION_META } from "../headers.js";
import { type JsonRpcRequest, RpcCode, RpcError, isErrorResponse, isPlainObject } from "../jsonrpc.js";
import { HttpUpstream } from "./http.js";
import { SseLegacyUpstream } from "./sse-legacy.js";
import { StdioUpstream } from "./stdio.js";
import type { Era, Upstream } from "./types.js";

export const MODERN_VERSION = "2026-07-28";
export const LEGACY_VERSIONS = ["2025-11-25", "2025-06-18", "2025-03-26"];
export const PROXY_INFO = { name: "mandate-mcp-proxy", version: "0.1.0" };

export interface PoolLimits {
  maxMessageBytes: number;
  /** stdio processes one server may run at once */
  maxProcessesPerServer: number;
  probeTimeoutMs: number;
}

/** A fresh upstream plus, for an era probe on stdio, whether the probe already answered. */
export interface OpenedUpstream {
  upstream: Upstream;
  era: Era;
  /** the DiscoverResult when the server speaks 2026-07-28 */
  discover?: Record<string, unknown>;
}

let probeIds = 0;

export function modernEnvelope(meta: Record<string, unknown> | undefined, capabilities: unknown, clientInfo: unknown): Record<string, unknown> {
  return { ...meta, [PROTOCOL_VERSION_META]: MODERN_VERSION, [CLIENT_CAPABILITIES_META]: capabilities ?? {}, [CLIENT_INFO_META]: clientInfo ?? PROXY_INFO };
}

function discoverRequest(): JsonRpcRequest {
  return { jsonrpc: "2.0", id: `mandate-probe-${++probeIds}`, method: "server/discover", params: { _meta: modernEnvelope(undefined, {}, PROXY_INFO) } };
}

function isDiscoverResult(result: unknown): result is Record<string, unknown> {
  return isPlainObject(result) && Array.isArray(result.supportedVersions) && result.supportedVersions.includes(MODERN_VERSION);
}

/**
 * Opens upstream conversations and remembers each server's protocol era (probed once
 * with `server/discover`: a 2026-07-28 server answers it, a 2025-era one refuses it).
 */
export class UpstreamPool {
  private readonly eras = new Map<string, Era>();
  private readonly processes = new Map<string, number>();
  private readonly modernHttp = new Map<string, HttpUpstream>();

  constructor(private readonly limits: PoolLimits) {}

  knownEra(server: string): Era | undefined {
    return this.eras.get(server);
  }

  forget(server: string): void {
    this.eras.delete(server);
    const shared = this.modernHttp.get(server);
    this.modernHttp.delete(server);
    void shared?.close();
  }

  runningProcesses(server: string): number {
    return this.processes.get(server) ?? 0;
  }

  /** The stateless endpoint of a 2026-07-28 HTTP server is shared by every caller. */
  private sharedModernHttp(spec: UpstreamSpec): HttpUpstream {
    let upstream = this.modernHttp.get(spec.server.name);
    if (!upstream || upstream.closed) {
      upstream = new HttpUpstream({ url: spec.server.url!, era: "modern", headers: spec.headers, maxMessageBytes: this.limits.maxMessageBytes });
      this.modernHttp.set(spec.server.name, upstream);
    }
    return upstream;
  }

  async open(spec: UpstreamSpec): Promise<OpenedUpstream> {
    const server = spec.server;
    if (server.transport === "sse") return { upstream: new SseLegacyUpstream({ url: server.url!, headers: spec.headers, maxMessageBytes: this.limits.maxMessageBytes }), era: "legacy" };
    if (server.transport === "http") {
      let era = this.eras.get(server.name);
      let discover: Record<string, unknown> | undefined;
      if (era === undefined) {
        const probe = this.sharedModernHttp(spec);
        try {
          const answer = await probe.request(discoverRequest(), { onRelated: () => undefined, timeoutMs: this.limits.probeTimeoutMs });
          era = !isErrorResponse(answer) && isDiscoverResult(answer.result) ? "modern" : "legacy";
          if (era === "modern") discover = (answer as { result: Record<string, unknown> }).result;
        } catch (error) {
          if (error instanceof RpcError && error.code === RpcCode.UPSTREAM_UNAVAILABLE && (error.data as { httpStatus?: number } | undefined)?.httpStatus === undefined) throw error;
          era = "legacy";
        }
        this.eras.set(server.name, era);
      }
      if (era === "modern") return { upstream: this.sharedModernHttp(spec), era, ...(discover ? { discover } : {}) };
      return { upstream: new HttpUpstream({ url: server.url!, era: "legacy", headers: spec.headers, maxMessageBytes: this.limits.maxMessageBytes }), era };
    }
    if (server.transport === "db") throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `MCP server ${server.name} is built in; the proxy hosts it per caller`);
    const running = this.processes.get(server.name) ?? 0;
    if (running >= this.limits.maxProcessesPerServer) {
      throw new RpcError(RpcCode.TOO_MANY_SESSIONS, `MCP server ${server.name} already runs ${running} processes (the limit); close idle sessions or mark the server --stateless to share one`, undefined, 429);
    }
    const upstream = new StdioUpstream({ command: server.command!, env: spec.env, maxMessageBytes: this.limits.maxMessageBytes });
    this.processes.set(server.name, running + 1);
    void upstream.exited.then(() => this.processes.set(server.name, Math.max(0, (this.processes.get(server.name) ?? 1) - 1)));
    let era = this.eras.get(server.name);
    let discover: Record<string, unknown> | undefined;
    if (era === undefined) {
      try {
        const answer = await upstream.request(discoverRequest(), { onRelated: () => undefined, timeoutMs: this.limits.probeTimeoutMs });
        era = !isErrorResponse(answer) && isDiscoverResult(answer.result) ? "modern" : "legacy";
        if (era === "modern") discover = (answer as { result: Record<string, unknown> }).result;
      } catch (error) {
        if (upstream.closed) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, `MCP server ${server.name} did not start: ${(error as Error).message}`);
        era = "legacy";
      }
      this.eras.set(server.name, era);
    }
    return { upstream, era, ...(discover ? { discover } : {}) };
  }
}
