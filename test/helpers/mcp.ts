import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { rm } from "node:fs/promises";
import Fastify, { type FastifyInstance } from "fastify";
import { StoreAuditLog } from "../../src/audit/index.js";
import { DefinitionPins, McpCatalog, McpProxy, type NewMcpServer, type ProxyLimits, registerMcpRoutes } from "../../src/mcp/index.js";
import type { AccessGate, GateDecision, GateRequest } from "../../src/policy/index.js";
import { Store } from "../../src/store/index.js";
import { tempDir } from "./backends.js";

const require = createRequire(import.meta.url);
export const EVERYTHING_BIN = require.resolve("@modelcontextprotocol/server-everything/dist/index.js");
export const FILESYSTEM_BIN = require.resolve("@modelcontextprotocol/server-filesystem/dist/index.js");

/**
 * A stand-in for the access layer in proxy-only tests: allows everything except the
 * rules given, records every request it was asked.
 * Component tests only (`startProxyHarness`, src/mcp/*.test.ts): they test the proxy in isolation; end-to-end tests use the real gate.
 */
export class TestGate implements AccessGate {
  readonly requests: GateRequest[] = [];
  deny = new Set<string>();
  approval = new Map<string, "pending" | "approved">();

  async authorize(request: GateRequest): Promise<GateDecision> {
    this.requests.push(request);
    const resource = request.resource.kind === "mcp" ? `mcp:${request.resource.server}/${request.resource.item === "tool" ? "" : `${request.resource.item}:`}${request.resource.name}` : "other";
    const principal = { kind: "agent" as const, name: request.caller.agent ?? "x", spiffeId: request.caller.spiffeId, roles: [], labels: {} };
    if (this.deny.has(resource)) return { allow: false, reasons: [`denied: test policy does not allow ${resource}`], obligations: [], policyIds: ["test"], principal, deniedBy: "agent_roles" };
    const approval = this.approval.get(resource);
    if (approval === "pending" && request.action === "mcp.tools/call") return { allow: false, reasons: [`approval required for ${resource}`], obligations: [{ kind: "approval_required", rule: "test" }], policyIds: ["test"], principal, accessRequest: { id: "ar_test1", status: "pending" }, deniedBy: "approval" };
    return { allow: true, reasons: [`allowed: test policy allows ${resource}`], obligations: [], policyIds: ["test"], principal };
  }
}

export interface ProxyHarness {
  url: string;
  proxy: McpProxy;
  catalog: McpCatalog;
  pins: DefinitionPins;
  store: Store;
  audit: StoreAuditLog;
  gate: TestGate;
  app: FastifyInstance;
  addServer(server: Omit<NewMcpServer, "owner"> & { owner?: string }): Promise<void>;
  close(): Promise<void>;
}

/** The proxy mounted on a plain loopback listener, callers named by an `x-test-agent` header (tests only). */
export async function startProxyHarness(limits: Partial<ProxyLimits> = {}): Promise<ProxyHarness> {
  const dataDir = await tempDir("mandate-mcp-");
  const store = await Store.open({ dataDir });
  const audit = new StoreAuditLog(store);
  const catalog = new McpCatalog(store);
  const pins = new DefinitionPins(store, audit);
  const gate = new TestGate();
  const proxy = new McpProxy({ catalog, pins, gate, audit, limits });
  const app = Fastify({ logger: false, forceCloseConnections: true });
  registerMcpRoutes(app, {
    proxy,
    async authenticate(request) {
      const agent = String(request.headers["x-test-agent"] ?? "tester");
      return { caller: { kind: "agent", spiffeId: `spiffe://test.local/agent/${agent}`, agent, via: "jwt-svid", notAfter: new Date(Date.now() + 3600_000) }, address: request.ip };
    },
  });
  await app.listen({ host: "127.0.0.1", port: 0 });
  const port = (app.server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    proxy,
    catalog,
    pins,
    store,
    audit,
    gate,
    app,
    async addServer(server) {
      await catalog.add({ owner: "alice", ...server }, "spiffe://test.local/mandate/admin");
    },
    async close() {
      await proxy.close();
      await app.close();
      await store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** A free loopback port for servers that cannot be told to use port 0 and report it. */
export async function freePort(): Promise<number> {
  const { createServer } = await import("node:net");
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** server-everything in Streamable HTTP mode (or legacy HTTP+SSE with `mode: "sse"`), as its own process. */
export async function startEverythingHttp(mode: "streamableHttp" | "sse" = "streamableHttp"): Promise<{ url: string; close(): Promise<void> }> {
  const { spawn } = await import("node:child_process");
  const port = await freePort();
  const child = spawn(process.execPath, [EVERYTHING_BIN, mode], { env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "ignore", "pipe"] });
  await new Promise<void>((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => reject(new Error(`server-everything ${mode} did not start: ${text}`)), 30_000);
    child.stderr!.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (/listening on port|running on port/i.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => reject(new Error(`server-everything exited with ${code}: ${text}`)));
  });
  return {
    url: `http://127.0.0.1:${port}/${mode === "sse" ? "sse" : "mcp"}`,
    async close() {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    },
  };
}

/** Waits until `check` passes (asynchronous audit records land a moment after the reply). */
export async function eventually<T>(check: () => Promise<T> | T, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await check();
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/**
 * A fetch for SDK transports that trusts a private CA and can present a client
 * certificate (Node's global fetch takes neither per call).
 */
export function fetchWithTls(tls: { ca: string; cert?: string; key?: string }): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const https = await import("node:https");
    const { Readable } = await import("node:stream");
    const url = new URL(input instanceof Request ? input.url : String(input));
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    const body = init?.body === undefined || init.body === null ? undefined : typeof init.body === "string" ? init.body : Buffer.from(await new Response(init.body).arrayBuffer());
    return new Promise<Response>((resolve, reject) => {
      const req = https.request(url, { method: init?.method ?? "GET", headers: Object.fromEntries(headers.entries()), ca: tls.ca, cert: tls.cert, key: tls.key, agent: false }, (res) => {
        const responseHeaders = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) responseHeaders.set(k, Array.isArray(v) ? v.join(", ") : v);
        const status = res.statusCode ?? 500;
        resolve(new Response(status === 202 || status === 204 ? null : (Readable.toWeb(res) as ReadableStream), { status, headers: responseHeaders }));
      });
      req.on("error", reject);
      init?.signal?.addEventListener("abort", () => req.destroy(new Error("aborted")), { once: true });
      req.end(body);
    });
  }) as typeof fetch;
}
