import type { AuditEventInput, AuditLog } from "../audit/index.js";
import { MandateError, isMandateError } from "../errors/index.js";
import { type LockRegistry, type TrustDomainAuthority, type X509SvidIssuer, parseCsr } from "../identity/index.js";
import { DEFAULT_LOGIN_LIMITS, LoginGuard, type LoginLimits } from "./login-guard.js";
import { burnPasswordCheck, verifyPassword } from "./password.js";
import type { UserPrincipal, UserRegistry } from "./registry.js";
import { checkTotp } from "./totp.js";

export const DEFAULT_USER_CERT_TTL_MS = 8 * 3600_000;
export const DEFAULT_USER_CERT_MAX_TTL_MS = 12 * 3600_000;

export interface UserLoginSettings {
  /** lifetime of a user certificate when the client asks for none (8 h) */
  certTtlMs: number;
  /** the most a client may ask for; longer requests are shortened to this */
  certMaxTtlMs: number;
  limits: LoginLimits;
}

export const DEFAULT_USER_LOGIN_SETTINGS: UserLoginSettings = { certTtlMs: DEFAULT_USER_CERT_TTL_MS, certMaxTtlMs: DEFAULT_USER_CERT_MAX_TTL_MS, limits: DEFAULT_LOGIN_LIMITS };

/** What a successful login hands back: a certificate for the key the client kept. */
export interface UserCredential {
  spiffeId: string;
  user: UserPrincipal;
  serial: string;
  /** leaf then intermediate */
  certPem: string;
  bundlePem: string;
  caPin: string;
  trustDomain: string;
  expiresAt: string;
}

export type LoginMethod = "password" | "sso" | "oauth";

/** Why a login failed, as recorded in the audit log (the caller sees less). */
export type LoginFailureReason =
  | "unknown_user"
  | "bad_password"
  | "mfa_missing"
  | "bad_totp"
  | "totp_replayed"
  | "disabled"
  | "locked"
  | "rate_limited"
  | "no_password"
  | "sso_failed"
  | "name_taken"
  | "bad_request";

export class LoginFailure extends MandateError {
  constructor(
    readonly reason: LoginFailureReason,
    error: MandateError,
  ) {
    super(error.code, error.message, { details: { ...(error.details ?? {}), reason } });
  }
}

const WRONG = () => new MandateError("LOGIN_FAILED", "login failed: wrong user name, password or code");

export interface UserLoginServiceOptions {
  users: UserRegistry;
  issuer: X509SvidIssuer;
  authority: TrustDomainAuthority;
  locks: LockRegistry;
  audit: AuditLog;
  settings?: Partial<UserLoginSettings> | undefined;
  now?: () => number;
}

/**
 * Turns a proof of who someone is (password + TOTP, or an OIDC ID token) into a
 * short-lived X.509 certificate `spiffe://<td>/user/<name>` for a key the client
 * generated. Every attempt is audited with a reason code; no secret is ever recorded.
 */
export class UserLoginService {
  readonly settings: UserLoginSettings;
  readonly guard: LoginGuard;
  private readonly now: () => number;

  constructor(private readonly options: UserLoginServiceOptions) {
    this.settings = { ...DEFAULT_USER_LOGIN_SETTINGS, ...(options.settings ?? {}) };
    this.guard = new LoginGuard(this.settings.limits);
    this.now = options.now ?? Date.now;
  }

  get users(): UserRegistry {
    return this.options.users;
  }

  /**
   * Checks a local user's password and TOTP code. Returns the principal, or throws a
   * LoginFailure (already counted against the rate limits, not yet audited).
   */
  async verifyLocalUser(input: { user: string; password: string; totp?: string | undefined; address: string }): Promise<UserPrincipal> {
    const name = input.user;
    try {
      await this.guard.assertAllowed(name, input.address);
    } catch (error) {
      throw new LoginFailure("rate_limited", error as MandateError);
    }
    const fail = async (reason: LoginFailureReason, error: MandateError = WRONG()): Promise<never> => {
      await this.guard.recordFailure(name, input.address);
      throw new LoginFailure(reason, error);
    };
    const credentials = await this.users.credentials(name);
    if (!credentials) {
      await burnPasswordCheck(input.password);
      return fail("unknown_user");
    }
    if (!credentials.passwordHash) {
      await burnPasswordCheck(input.password);
      return fail("no_password", new MandateError("LOGIN_FAILED", "login failed: this user logs in through SSO (`mandate login --sso <provider>`)"));
    }
    if (!(await verifyPassword(input.password, credentials.passwordHash))) return fail("bad_password");
    if (!input.totp) return fail("mfa_missing", new MandateError("MFA_REQUIRED", "a TOTP code from the authenticator app is required (--totp CODE)"));
    if (!credentials.totpSecret) return fail("bad_totp");
    const check = checkTotp(credentials.totpSecret, input.totp, this.now(), credentials.totpLastStep);
    if (!check.ok) {
      if (check.reason === "replayed") return fail("totp_replayed", new MandateError("LOGIN_FAILED", "login failed: that TOTP code was already used; wait for the next one"));
      return fail("bad_totp");
    }
    const principal = await this.assertMayLogIn(name, input.address);
    // Spent atomically (conditional update), so of two logins racing with one code only one wins.
    if (!(await this.users.consumeTotpStep(name, check.step))) {
      return fail("totp_replayed", new MandateError("LOGIN_FAILED", "login failed: that TOTP code was already used; wait for the next one"));
    }
    await this.guard.recordSuccess(name);
    return principal;
  }

  /** Disabled and locked users get no new credential, whatever proof they bring. */
  async assertMayLogIn(name: string, address: string): Promise<UserPrincipal> {
    const principal = await this.users.get(name);
    if (!principal) throw new LoginFailure("unknown_user", WRONG());
    if (principal.disabled) {
      await this.guard.recordFailure(name, address);
      throw new LoginFailure("disabled", new MandateError("LOGIN_FAILED", `login failed: user ${name} is disabled`));
    }
    const spiffeId = this.users.spiffeIdOf(name);
    const lock = this.options.locks.lockFor({ spiffeId });
    if (lock) throw new LoginFailure("locked", new MandateError("LOCKED", `user ${name} is locked: ${lock.reason}`, { details: { lockId: lock.id, expiresAt: lock.expiresAt } }));
    return principal;
  }

  /** Local login: password + TOTP, then a certificate for the CSR's key. */
  async loginWithPassword(input: { user: string; password: string; totp?: string | undefined; csr: string; ttlSeconds?: number | undefined; address: string }): Promise<UserCredential> {
    const csr = await this.parseCsrOrFail(input.csr, { user: input.user, address: input.address, method: "password" });
    const principal = await this.audited({ user: input.user, address: input.address, method: "password" }, () => this.verifyLocalUser(input));
    return this.issueCertificate(principal, csr, { method: "password", address: input.address, ttlSeconds: input.ttlSeconds });
  }

  async parseCsrOrFail(pem: string, attempt: { user: string; address: string; method: LoginMethod }) {
    return this.audited(attempt, async () => {
      try {
        return parseCsr(pem);
      } catch (error) {
        throw new LoginFailure("bad_request", error as MandateError);
      }
    });
  }

  /** Runs a login step; a failure is recorded (type user.login, its code and reason) and rethrown. */
  async audited<T>(attempt: { user?: string | undefined; address: string; method: LoginMethod; provider?: string | undefined }, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (error) {
      const reason = error instanceof LoginFailure ? error.reason : "sso_failed";
      const code = isMandateError(error) ? error.code : "INTERNAL";
      await this.options.audit
        .append({
          type: "user.login",
          code,
          actor: { kind: "anonymous", address: attempt.address },
          target: attempt.user ? { user: attempt.user.slice(0, 128) } : {},
          outcome: { status: "error", error: code, message: (error as Error).message },
          details: { method: attempt.method, reason, ...(attempt.provider ? { provider: attempt.provider } : {}) },
        })
        .catch(() => undefined);
      throw error;
    }
  }

  /** Signs the user certificate; its issuance record and the login's audit event commit together. */
  async issueCertificate(
    principal: UserPrincipal,
    csr: ReturnType<typeof parseCsr>,
    context: { method: LoginMethod; address: string; ttlSeconds?: number | undefined; provider?: string | undefined; details?: Record<string, unknown> },
  ): Promise<UserCredential> {
    const spiffeId = this.users.spiffeIdOf(principal.name);
    const ttlMs = Math.min(context.ttlSeconds ? context.ttlSeconds * 1000 : this.settings.certTtlMs, this.settings.certMaxTtlMs);
    const event = (issued: { serialHex: string; notAfter: Date }): AuditEventInput => ({
      type: "user.login",
      code: "OK",
      actor: { kind: "user", user: principal.name, spiffeId, address: context.address },
      target: { user: principal.name, spiffeId, serial: issued.serialHex },
      outcome: { status: "ok" },
      details: { method: context.method, expiresAt: issued.notAfter.toISOString(), roles: principal.roles, ...(context.provider ? { provider: context.provider } : {}), ...(context.details ?? {}) },
    });
    const svid = await this.audited({ user: principal.name, address: context.address, method: context.method, provider: context.provider }, () =>
      this.options.issuer.issue({ csr, spiffeId, agentName: null, instanceId: null, ttlMs, audit: event }),
    );
    await this.users.recordLogin(principal.name);
    const authority = this.options.authority;
    return {
      spiffeId,
      user: principal,
      serial: svid.serialHex,
      certPem: svid.chainPem,
      bundlePem: authority.x509AuthoritiesPem(),
      caPin: authority.caPin,
      trustDomain: authority.trustDomain,
      expiresAt: svid.notAfter.toISOString(),
    };
  }
}
