/**
 * JSON-RPC 2.0 as MCP uses it. Each message is parsed exactly once; the proxy then
 * authorizes and forwards that same object, so fields it does not know (and `_meta`)
 * reach the upstream untouched. Shapes are checked, never rebuilt.
 */
export type JsonRpcId = string | number;

export interface JsonRpcRequest {
  jsonrpc: "2.0";
  id: JsonRpcId;
  method: string;
  params?: Record<string, unknown>;
  [extra: string]: unknown;
}

export interface JsonRpcNotification {
  jsonrpc: "2.0";
  method: string;
  params?: Record<string, unknown>;
  [extra: string]: unknown;
}

export interface JsonRpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface JsonRpcResult {
  jsonrpc: "2.0";
  id: JsonRpcId;
  result: Record<string, unknown>;
  [extra: string]: unknown;
}

export interface JsonRpcErrorResponse {
  jsonrpc: "2.0";
  id: JsonRpcId | null;
  error: JsonRpcErrorObject;
  [extra: string]: unknown;
}

export type JsonRpcResponse = JsonRpcResult | JsonRpcErrorResponse;
export type JsonRpcMessage = JsonRpcRequest | JsonRpcNotification | JsonRpcResponse;

export type ParsedMessage =
  | { kind: "request"; message: JsonRpcRequest }
  | { kind: "notification"; message: JsonRpcNotification }
  | { kind: "response"; message: JsonRpcResponse };

/** JSON-RPC and MCP error codes the proxy answers with. */
export const RpcCode = {
  PARSE_ERROR: -32700,
  INVALID_REQUEST: -32600,
  METHOD_NOT_FOUND: -32601,
  INVALID_PARAMS: -32602,
  INTERNAL_ERROR: -32603,
  /** implementation-defined range (-32000..-32019): Mandate's own refusals */
  UPSTREAM_UNAVAILABLE: -32001,
  PERMISSION_DENIED: -32010,
  APPROVAL_REQUIRED: -32011,
  DEFINITION_PENDING: -32012,
  RESULT_BLOCKED: -32013,
  TOO_MANY_SESSIONS: -32014,
  SESSION_NOT_FOUND: -32015,
  UPSTREAM_TIMEOUT: -32016,
  /** reserved by the 2026-07-28 revision */
  HEADER_MISMATCH: -32020,
  MISSING_CLIENT_CAPABILITY: -32021,
  UNSUPPORTED_PROTOCOL_VERSION: -32022,
} as const;

export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
    /** the HTTP status a Streamable HTTP response carries for this error */
    readonly httpStatus = 200,
  ) {
    super(message);
    this.name = "RpcError";
  }

  toResponse(id: JsonRpcId | null): JsonRpcErrorResponse {
    return errorResponse(id, this.code, this.message, this.data);
  }
}

export function errorResponse(id: JsonRpcId | null, code: number, message: string, data?: unknown): JsonRpcErrorResponse {
  return { jsonrpc: "2.0", id, error: data === undefined ? { code, message } : { code, message, data } };
}

export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;
/** Deeper documents are refused: every later walk (hashing, scanning, redaction) stays bounded. */
export const MAX_NESTING = 64;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isValidId(value: unknown): value is JsonRpcId {
  return (typeof value === "string" && value.length <= 256) || (typeof value === "number" && Number.isSafeInteger(value));
}

/**
 * Iterative, so a hostile document cannot exhaust the stack. Two parallel stacks and
 * for-in rather than a tuple and an `Object.values` array per node: every upstream
 * result passes through here.
 */
export function nestingDepthExceeds(value: unknown, limit: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  const nodes: object[] = [value];
  const depths: number[] = [1];
  while (nodes.length > 0) {
    const node = nodes.pop()! as Record<string, unknown>;
    const depth = depths.pop()!;
    if (depth > limit) return true;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) {
        const child: unknown = node[i];
        if (typeof child === "object" && child !== null) {
          nodes.push(child);
          depths.push(depth + 1);
        }
      }
    } else {
      for (const key in node) {
        const child = node[key];
        if (typeof child === "object" && child !== null) {
          nodes.push(child);
          depths.push(depth + 1);
        }
      }
    }
  }
  return false;
}

/** Serialized sizes already known (a parsed body, a written answer), so recording a size does not serialize again. */
const knownBytes = new WeakMap<object, number>();

/** The size of a message as JSON: what was read or written for it, else what it serializes to. */
export function messageBytes(message: unknown): number {
  if (typeof message === "object" && message !== null) {
    const known = knownBytes.get(message);
    if (known !== undefined) return known;
  }
  return Buffer.byteLength(JSON.stringify(message) ?? "");
}

/** JSON text of a message about to be written, its size remembered for `messageBytes`. */
export function serializeMessage(message: object): string {
  const text = JSON.stringify(message);
  knownBytes.set(message, Buffer.byteLength(text));
  return text;
}

/**
 * Classifies an already-decoded JSON value as one JSON-RPC message, or throws an
 * `RpcError` that says what is wrong. Batches are refused: MCP removed them in
 * 2025-06-18, and one authorization per HTTP request keeps the audit trail linear.
 */
export function classifyMessage(value: unknown): ParsedMessage {
  if (Array.isArray(value)) throw new RpcError(RpcCode.INVALID_REQUEST, "JSON-RPC batches are not supported (MCP removed batching in 2025-06-18); send one message per request", undefined, 400);
  if (!isPlainObject(value)) throw new RpcError(RpcCode.INVALID_REQUEST, "a JSON-RPC message must be a JSON object", undefined, 400);
  if (value.jsonrpc !== "2.0") throw new RpcError(RpcCode.INVALID_REQUEST, 'jsonrpc must be "2.0"', undefined, 400);
  if (nestingDepthExceeds(value, MAX_NESTING)) throw new RpcError(RpcCode.INVALID_REQUEST, `the message nests deeper than ${MAX_NESTING} levels`, undefined, 400);
  const hasId = "id" in value;
  if (typeof value.method === "string") {
    if (value.method.length === 0 || value.method.length > 128) throw new RpcError(RpcCode.INVALID_REQUEST, "method must be 1 to 128 characters", undefined, 400);
    if ("params" in value && !isPlainObject(value.params)) throw new RpcError(RpcCode.INVALID_REQUEST, "params must be an object", undefined, 400);
    if ("result" in value || "error" in value) throw new RpcError(RpcCode.INVALID_REQUEST, "a message cannot be both a request and a response", undefined, 400);
    if (!hasId) return { kind: "notification", message: value as JsonRpcNotification };
    if (!isValidId(value.id)) throw new RpcError(RpcCode.INVALID_REQUEST, "id must be a string (at most 256 characters) or a safe integer", undefined, 400);
    return { kind: "request", message: value as JsonRpcRequest };
  }
  if ("method" in value) throw new RpcError(RpcCode.INVALID_REQUEST, "method must be a string", undefined, 400);
  if (!hasId || !(isValidId(value.id) || value.id === null)) throw new RpcError(RpcCode.INVALID_REQUEST, "a response needs the id of its request", undefined, 400);
  const hasResult = "result" in value;
  const hasError = "error" in value;
  if (hasResult === hasError) throw new RpcError(RpcCode.INVALID_REQUEST, "a response carries exactly one of result and error", undefined, 400);
  if (hasResult && !isPlainObject(value.result)) throw new RpcError(RpcCode.INVALID_REQUEST, "result must be an object", undefined, 400);
  if (hasError) {
    const error = value.error;
    if (!isPlainObject(error) || typeof error.code !== "number" || !Number.isInteger(error.code) || typeof error.message !== "string") {
      throw new RpcError(RpcCode.INVALID_REQUEST, "error must be {code: integer, message: string}", undefined, 400);
    }
  }
  return { kind: "response", message: value as unknown as JsonRpcResponse };
}

/** Decodes bytes or text into one JSON-RPC message; never throws anything but `RpcError`. */
export function parseMessage(input: string | Buffer, maxBytes = DEFAULT_MAX_MESSAGE_BYTES): ParsedMessage {
  const size = typeof input === "string" ? Buffer.byteLength(input) : input.length;
  if (size > maxBytes) throw new RpcError(RpcCode.INVALID_REQUEST, `the message is ${size} bytes; the limit is ${maxBytes}`, undefined, 413);
  let value: unknown;
  try {
    value = JSON.parse(typeof input === "string" ? input : input.toString("utf8"));
  } catch (error) {
    throw new RpcError(RpcCode.PARSE_ERROR, `the body is not valid JSON: ${(error as Error).message.slice(0, 200)}`, undefined, 400);
  }
  const parsed = classifyMessage(value);
  knownBytes.set(parsed.message, size);
  return parsed;
}

export function isRequest(message: JsonRpcMessage): message is JsonRpcRequest {
  return typeof (message as JsonRpcRequest).method === "string" && "id" in message;
}

export function isNotification(message: JsonRpcMessage): message is JsonRpcNotification {
  return typeof (message as JsonRpcNotification).method === "string" && !("id" in message);
}

export function isResponse(message: JsonRpcMessage): message is JsonRpcResponse {
  return !("method" in message) && ("result" in message || "error" in message);
}

export function isErrorResponse(message: JsonRpcMessage): message is JsonRpcErrorResponse {
  return isResponse(message) && "error" in message;
}

/** `params._meta` of a message, if it is an object. */
export function metaOf(message: { params?: Record<string, unknown> }): Record<string, unknown> | undefined {
  const meta = message.params?._meta;
  return isPlainObject(meta) ? meta : undefined;
}

export { isPlainObject };
