import { type JsonRpcRequest, RpcCode, RpcError, isPlainObject, metaOf } from "./jsonrpc.js";

/**
 * The 2026-07-28 request-metadata headers. Intermediaries route on them; the proxy
 * checks that they agree with the body and then decides on the body alone, so a
 * header can never make the proxy authorize something other than what it forwards.
 */
export const PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion";
export const CLIENT_CAPABILITIES_META = "io.modelcontextprotocol/clientCapabilities";
export const CLIENT_INFO_META = "io.modelcontextprotocol/clientInfo";
export const SERVER_INFO_META = "io.modelcontextprotocol/serverInfo";
export const LOG_LEVEL_META = "io.modelcontextprotocol/logLevel";
export const SUBSCRIPTION_ID_META = "io.modelcontextprotocol/subscriptionId";

const SENTINEL_PREFIX = "=?base64?";
const SENTINEL_SUFFIX = "?=";
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** RFC 9110 field-value characters: visible ASCII, space, tab. */
const SAFE_VALUE = /^[\x20-\x7e\t]*$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The header form of a value: as-is when header-safe, else the base64 sentinel form. */
export function encodeHeaderValue(value: string): string {
  const plain = SAFE_VALUE.test(value) && value === value.trim() && !(value.startsWith(SENTINEL_PREFIX) && value.endsWith(SENTINEL_SUFFIX));
  return plain ? value : `${SENTINEL_PREFIX}${Buffer.from(value, "utf8").toString("base64")}${SENTINEL_SUFFIX}`;
}

/** The value a header carries, decoding the sentinel form; undefined when it is malformed. */
export function decodeHeaderValue(raw: string): string | undefined {
  if (raw.startsWith(SENTINEL_PREFIX) && raw.endsWith(SENTINEL_SUFFIX) && raw.length >= SENTINEL_PREFIX.length + SENTINEL_SUFFIX.length) {
    const body = raw.slice(SENTINEL_PREFIX.length, raw.length - SENTINEL_SUFFIX.length);
    if (body.length % 4 !== 0 || !BASE64.test(body)) return undefined;
    const decoded = Buffer.from(body, "base64");
    const text = decoded.toString("utf8");
    // Reject invalid UTF-8 (it would decode to U+FFFD and compare falsely equal).
    if (!Buffer.from(text, "utf8").equals(decoded)) return undefined;
    return text;
  }
  return SAFE_VALUE.test(raw) ? raw : undefined;
}

/** Where `params.name` / `params.uri` is the routing name, per method. */
export function nameSourceOf(message: JsonRpcRequest): string | undefined {
  const params = message.params;
  if (!params) return undefined;
  switch (message.method) {
    case "tools/call":
    case "prompts/get":
      return typeof params.name === "string" ? params.name : undefined;
    case "resources/read":
      return typeof params.uri === "string" ? params.uri : undefined;
    default:
      return undefined;
  }
}

export const METHODS_WITH_NAME = new Set(["tools/call", "prompts/get", "resources/read"]);

export interface ParamHeader {
  /** the `{Name}` of `Mcp-Param-{Name}`, as declared */
  header: string;
  /** property path into the arguments, `properties` keys only */
  path: string[];
}

/**
 * The `x-mcp-header` declarations of a tool's input schema. Only properties reached
 * through `properties` chains count (the spec's static reachability rule); an invalid
 * declaration makes the whole definition invalid, reported as `invalid`.
 */
export function paramHeadersOf(inputSchema: unknown): { headers: ParamHeader[]; invalid?: string } {
  const headers: ParamHeader[] = [];
  const seen = new Set<string>();
  const stack: [unknown, string[]][] = [[inputSchema, []]];
  while (stack.length > 0) {
    const [schema, path] = stack.pop()!;
    if (!isPlainObject(schema) || path.length > 16) continue;
    const declared = schema["x-mcp-header"];
    if (declared !== undefined && path.length > 0) {
      if (typeof declared !== "string" || !TOKEN.test(declared)) return { headers, invalid: `x-mcp-header at ${path.join(".")} is not an HTTP token` };
      const type = schema.type;
      if (type !== "string" && type !== "integer" && type !== "boolean") return { headers, invalid: `x-mcp-header at ${path.join(".")} is on a ${String(type)} property (only string, integer, boolean)` };
      const lower = declared.toLowerCase();
      if (seen.has(lower)) return { headers, invalid: `x-mcp-header ${declared} is declared twice` };
      seen.add(lower);
      headers.push({ header: declared, path });
    }
    if (isPlainObject(schema.properties)) for (const [key, child] of Object.entries(schema.properties)) stack.push([child, [...path, key]]);
  }
  return { headers };
}

function valueAt(args: unknown, path: string[]): unknown {
  let node = args;
  for (const key of path) {
    if (!isPlainObject(node) || !Object.hasOwn(node, key)) return undefined;
    node = node[key];
  }
  return node;
}

/** The header string a primitive argument value becomes (undefined when none is sent). */
export function headerStringOf(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number" && Number.isSafeInteger(value)) return String(value);
  return undefined;
}

export type HeaderLookup = (name: string) => string | undefined;

function mismatch(message: string): RpcError {
  return new RpcError(RpcCode.HEADER_MISMATCH, `Header mismatch: ${message}`, undefined, 400);
}

/**
 * Checks a modern-era POST's headers against its body (the spec's Server Validation).
 * `paramHeaders` are the pinned tool's `x-mcp-header` declarations for tools/call.
 */
export function checkRequestHeaders(message: JsonRpcRequest, header: HeaderLookup, paramHeaders: ParamHeader[] = []): void {
  const version = header("mcp-protocol-version");
  const claimed = metaOf(message)?.[PROTOCOL_VERSION_META];
  if (version === undefined) throw mismatch("the MCP-Protocol-Version header is missing");
  if (version !== claimed) throw mismatch(`MCP-Protocol-Version header ${JSON.stringify(version)} does not match _meta ${JSON.stringify(claimed ?? null)}`);
  const method = header("mcp-method");
  if (method === undefined) throw mismatch("the Mcp-Method header is missing");
  if (method !== message.method) throw mismatch(`Mcp-Method header ${JSON.stringify(method)} does not match body method ${JSON.stringify(message.method)}`);
  if (METHODS_WITH_NAME.has(message.method)) {
    const raw = header("mcp-name");
    if (raw === undefined) throw mismatch(`the Mcp-Name header is required for ${message.method}`);
    const name = decodeHeaderValue(raw);
    if (name === undefined) throw mismatch("the Mcp-Name header is malformed");
    const body = nameSourceOf(message);
    if (name !== body) throw mismatch(`Mcp-Name header ${JSON.stringify(name)} does not match body value ${JSON.stringify(body ?? null)}`);
  }
  if (message.method !== "tools/call") return;
  const args = message.params?.arguments;
  for (const declared of paramHeaders) {
    const raw = header(`mcp-param-${declared.header.toLowerCase()}`);
    const bodyValue = valueAt(args, declared.path);
    const expected = bodyValue === null ? undefined : headerStringOf(bodyValue);
    if (raw === undefined) {
      if (expected !== undefined) throw mismatch(`Mcp-Param-${declared.header} is missing but the body carries ${declared.path.join(".")}`);
      continue;
    }
    const decoded = decodeHeaderValue(raw);
    if (decoded === undefined) throw mismatch(`Mcp-Param-${declared.header} is malformed`);
    if (expected === undefined) throw mismatch(`Mcp-Param-${declared.header} is present but the body has no ${declared.path.join(".")}`);
    const equal = typeof bodyValue === "number" ? Number(decoded) === bodyValue : decoded === expected;
    if (!equal) throw mismatch(`Mcp-Param-${declared.header} header value does not match body value at ${declared.path.join(".")}`);
  }
}

/** Headers an outgoing modern-era POST carries, derived from the body (never copied from a client). */
export function requestHeadersFor(message: JsonRpcRequest, paramHeaders: ParamHeader[] = []): Record<string, string> {
  const out: Record<string, string> = { "mcp-method": message.method };
  const version = metaOf(message)?.[PROTOCOL_VERSION_META];
  if (typeof version === "string" && SAFE_VALUE.test(version)) out["mcp-protocol-version"] = version;
  const name = nameSourceOf(message);
  if (name !== undefined) out["mcp-name"] = encodeHeaderValue(name);
  if (message.method === "tools/call") {
    for (const declared of paramHeaders) {
      const value = headerStringOf(valueAt(message.params?.arguments, declared.path));
      if (value !== undefined) out[`mcp-param-${declared.header.toLowerCase()}`] = encodeHeaderValue(value);
    }
  }
  return out;
}
