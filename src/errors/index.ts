/**
 * Every failure Mandate reports carries a stable `code`: scripts match on the
 * code, humans read the message, and HTTP callers get `httpStatus`.
 */
export type MandateErrorCode =
  | "INVALID_ARGUMENT"
  | "INVALID_SPIFFE_ID"
  | "INVALID_TRUST_DOMAIN"
  | "INVALID_CSR"
  | "CSR_KEY_REJECTED"
  | "CSR_IDENTITY_MISMATCH"
  | "INVALID_CERTIFICATE"
  | "INVALID_JWT"
  | "JWT_AUDIENCE_MISMATCH"
  | "JWT_EXPIRED"
  | "INVALID_BUNDLE"
  | "INVALID_JOIN_TOKEN"
  | "JOIN_TOKEN_EXPIRED"
  | "JOIN_TOKEN_USED"
  | "CA_PIN_MISMATCH"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "LOCKED"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "BODY_TOO_LARGE"
  | "MALFORMED_REQUEST"
  | "STORE_UNAVAILABLE"
  | "STORE_READ_ONLY"
  | "CA_UNAVAILABLE"
  | "CONFIG_INVALID"
  | "CONNECTION_FAILED"
  | "AUDIT_TAMPERED"
  | "RATE_LIMITED"
  | "BUDGET_EXCEEDED"
  | "GUARDRAIL_BLOCKED"
  | "UPSTREAM_UNAVAILABLE"
  | "UPSTREAM_TIMEOUT"
  | "JOIN_NOT_ALLOWED"
  | "POLICY_INVALID"
  | "APPROVAL_REQUIRED"
  | "DELEGATION_INVALID"
  | "DELEGATION_EXPIRED"
  | "DELEGATION_REVOKED"
  | "SCOPE_WIDENING"
  | "DELEGATION_DEPTH_EXCEEDED"
  | "LOGIN_FAILED"
  | "MFA_REQUIRED"
  | "SESSION_EXPIRED"
  | "CONFLICT"
  | "PROOF_INVALID"
  | "INTERNAL";

const HTTP_STATUS: Record<MandateErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  INVALID_SPIFFE_ID: 400,
  INVALID_TRUST_DOMAIN: 400,
  INVALID_CSR: 400,
  CSR_KEY_REJECTED: 400,
  CSR_IDENTITY_MISMATCH: 400,
  INVALID_CERTIFICATE: 401,
  INVALID_JWT: 401,
  JWT_AUDIENCE_MISMATCH: 401,
  JWT_EXPIRED: 401,
  INVALID_BUNDLE: 400,
  INVALID_JOIN_TOKEN: 401,
  JOIN_TOKEN_EXPIRED: 401,
  JOIN_TOKEN_USED: 401,
  CA_PIN_MISMATCH: 502,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  LOCKED: 403,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  BODY_TOO_LARGE: 413,
  MALFORMED_REQUEST: 400,
  STORE_UNAVAILABLE: 503,
  STORE_READ_ONLY: 503,
  CA_UNAVAILABLE: 503,
  CONFIG_INVALID: 400,
  CONNECTION_FAILED: 502,
  AUDIT_TAMPERED: 409,
  RATE_LIMITED: 429,
  BUDGET_EXCEEDED: 402,
  GUARDRAIL_BLOCKED: 400,
  UPSTREAM_UNAVAILABLE: 502,
  UPSTREAM_TIMEOUT: 504,
  JOIN_NOT_ALLOWED: 403,
  POLICY_INVALID: 400,
  APPROVAL_REQUIRED: 403,
  DELEGATION_INVALID: 401,
  DELEGATION_EXPIRED: 401,
  DELEGATION_REVOKED: 401,
  SCOPE_WIDENING: 400,
  DELEGATION_DEPTH_EXCEEDED: 400,
  LOGIN_FAILED: 401,
  MFA_REQUIRED: 401,
  SESSION_EXPIRED: 401,
  CONFLICT: 409,
  PROOF_INVALID: 401,
  INTERNAL: 500,
};

export interface MandateErrorJson {
  code: MandateErrorCode;
  message: string;
  details?: Record<string, unknown>;
}

export class MandateError extends Error {
  readonly code: MandateErrorCode;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: MandateErrorCode, message: string, options?: { details?: Record<string, unknown>; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "MandateError";
    this.code = code;
    this.details = options?.details;
  }

  get httpStatus(): number {
    return HTTP_STATUS[this.code];
  }

  toJSON(): MandateErrorJson {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }

  static fromJson(body: unknown, fallbackStatus?: number): MandateError {
    if (typeof body === "object" && body !== null) {
      const { code, message, details } = body as Partial<MandateErrorJson>;
      if (typeof code === "string" && code in HTTP_STATUS && typeof message === "string") {
        return new MandateError(code as MandateErrorCode, message, details === undefined ? undefined : { details });
      }
    }
    return new MandateError("INTERNAL", `unexpected error response${fallbackStatus ? ` (HTTP ${fallbackStatus})` : ""}`);
  }
}

export function isMandateError(value: unknown, code?: MandateErrorCode): value is MandateError {
  return value instanceof MandateError && (code === undefined || value.code === code);
}
