import { type MandateError, isMandateError } from "../../errors/index.js";
import type { WireFormat } from "../types.js";

/**
 * Refusals in the caller's own wire format, so an SDK raises its usual typed error
 * (PermissionDeniedError, RateLimitError, …) with Mandate's reason as the message and
 * Mandate's stable code in `code` / `error.type`'s neighbour `mandate_code`.
 */
const OPENAI_TYPE: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  402: "insufficient_quota",
  403: "permission_error",
  404: "invalid_request_error",
  413: "invalid_request_error",
  429: "rate_limit_exceeded",
};
const ANTHROPIC_TYPE: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  402: "billing_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
};

export function errorBody(format: WireFormat, error: MandateError, requestId?: string): Record<string, unknown> {
  const status = error.httpStatus;
  const details = error.details ?? {};
  if (format === "anthropic") {
    return {
      type: "error",
      error: { type: ANTHROPIC_TYPE[status] ?? (status === 504 || status === 503 ? "overloaded_error" : "api_error"), message: error.message, mandate_code: error.code, ...details },
      ...(requestId ? { request_id: requestId } : {}),
    };
  }
  return {
    error: {
      message: error.message,
      type: OPENAI_TYPE[status] ?? "server_error",
      param: typeof details.param === "string" ? details.param : null,
      code: error.code,
      ...details,
    },
  };
}

/** The SSE event that ends a stream with an error after the headers have gone (both SDKs raise it). */
export function errorEvent(format: WireFormat, error: unknown): string {
  const e = isMandateError(error) ? error : undefined;
  const message = (error as Error).message ?? String(error);
  if (format === "anthropic") {
    return `event: error\ndata: ${JSON.stringify({ type: "error", error: { type: "api_error", message, ...(e ? { mandate_code: e.code } : {}) } })}\n\n`;
  }
  return `data: ${JSON.stringify({ error: { message, type: "server_error", param: null, code: e?.code ?? "UPSTREAM_FAILED" } })}\n\n`;
}
