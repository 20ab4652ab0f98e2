import type { AuthenticatedCaller } from "../policy/index.js";
import type { JsonRpcMessage, JsonRpcResponse } from "./jsonrpc.js";

/** Who sent a message to the proxy, as established by workload authentication. */
export interface CallerCredentials {
  caller: AuthenticatedCaller;
  delegationToken?: string | undefined;
  address?: string | undefined;
}

/**
 * Where the answer to one client message goes. For Streamable HTTP the first `event`
 * turns the HTTP response into an SSE stream; a reply that is only ever `finish`ed is a
 * plain JSON response.
 */
export interface ClientReply {
  event(message: JsonRpcMessage): void;
  /** the final answer; `sessionId` is set on the answer to a 2025-era initialize */
  finish(message: JsonRpcResponse, sessionId?: string): void;
  readonly closed: boolean;
  onClose(listener: () => void): void;
}

export interface ProxyLimits {
  maxSessions: number;
  maxSessionsPerCaller: number;
  idleMs: number;
  requestTimeoutMs: number;
  maxMessageBytes: number;
  maxProcessesPerServer: number;
  /** how long a client has to answer a server→client request (sampling, elicitation, roots) */
  clientResponseTimeoutMs: number;
  /** input-required rounds one request may take */
  maxInputRounds: number;
  /** how long a parked 2026-07-28 input-required call waits for its retry */
  parkedTtlMs: number;
}

export const DEFAULT_LIMITS: ProxyLimits = {
  maxSessions: 4096,
  maxSessionsPerCaller: 256,
  idleMs: 15 * 60_000,
  requestTimeoutMs: 120_000,
  maxMessageBytes: 4 * 1024 * 1024,
  maxProcessesPerServer: 32,
  clientResponseTimeoutMs: 120_000,
  maxInputRounds: 8,
  parkedTtlMs: 10 * 60_000,
};
