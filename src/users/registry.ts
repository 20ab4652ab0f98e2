import { MandateError } from "../errors/index.js";
import { makeSpiffeId, validateLabels, validateRoles } from "../identity/index.js";
import type { Store, UserTable } from "../store/index.js";
import { base32Decode, base32Encode } from "./base32.js";
import { buildOtpauthUri } from "./otpauth.js";
import { assertAcceptablePassword, generatePassword, hashPassword } from "./password.js";
import { generateTotpSecret } from "./totp.js";

/** What the access layer needs to know about a person acting, or delegating. */
export interface UserPrincipal {
  name: string;
  roles: string[];
  labels: Record<string, string>;
  disabled: boolean;
}

export interface User extends UserPrincipal {
  spiffeId: string;
  /** "local" (password + TOTP) or "sso" (provisioned by an OIDC provider) */
  source: "local" | "sso";
  ssoProvider?: string | undefined;
  email?: string | undefined;
  totpEnrolled: boolean;
  createdAt: string;
  createdBy: string;
  updatedAt: string;
  lastLoginAt?: string | undefined;
}

/** Shown once, when a user is created or a credential reset, and never stored in a readable form again (the password) or shown again (the TOTP secret). */
export interface EnrolmentSecrets {
  password?: string | undefined;
  totp?: { secret: string; uri: string } | undefined;
}

/** The stored secrets a login checks; never leaves the users module. */
export interface UserCredentials {
  name: string;
  passwordHash: string | null;
  totpSecret: Buffer | null;
  totpLastStep: number | null;
  disabled: boolean;
}

const USER_NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

export function validateUserName(name: string): string {
  if (name === "me") throw new MandateError("INVALID_ARGUMENT", 'the user name "me" is reserved (it names the caller in the API)');
  if (!USER_NAME.test(name)) {
    throw new MandateError("INVALID_ARGUMENT", `invalid user name ${JSON.stringify(name.slice(0, 80))}: use 1-63 letters, digits, '.', '-' or '_', starting with a letter or digit`);
  }
  return name;
}

function toUser(row: UserTable, trustDomain: string): User {
  return {
    name: row.name,
    spiffeId: makeSpiffeId(trustDomain, "user", row.name).uri,
    roles: JSON.parse(row.roles) as string[],
    labels: JSON.parse(row.labels) as Record<string, string>,
    disabled: row.disabled === 1,
    source: row.sso_provider ? "sso" : "local",
    ...(row.sso_provider ? { ssoProvider: row.sso_provider } : {}),
    ...(row.email ? { email: row.email } : {}),
    totpEnrolled: row.totp_secret !== null,
    createdAt: new Date(row.created_at).toISOString(),
    createdBy: row.created_by,
    updatedAt: new Date(row.updated_at).toISOString(),
    ...(row.last_login_at ? { lastLoginAt: new Date(row.last_login_at).toISOString() } : {}),
  };
}

export interface UserUpdate {
  roles?: string[] | undefined;
  labels?: Record<string, string> | undefined;
  disabled?: boolean | undefined;
  /** a new password, or true to generate one */
  resetPassword?: string | true | undefined;
  resetTotp?: boolean | undefined;
}

/**
 * The people who can log in: local users (password + TOTP) and users an OIDC provider
 * vouched for. Their SPIFFE ID is `spiffe://<td>/user/<name>`.
 */
export class UserRegistry {
  constructor(
    private readonly store: Store,
    readonly trustDomain: string,
    private readonly now: () => number = Date.now,
  ) {}

  spiffeIdOf(name: string): string {
    return makeSpiffeId(this.trustDomain, "user", validateUserName(name)).uri;
  }

  /** Resolves a user principal (delegation, policy); undefined when there is no such user. */
  async get(name: string): Promise<UserPrincipal | undefined> {
    if (!USER_NAME.test(name)) return undefined;
    const row = await this.store.db.selectFrom("users").select(["name", "roles", "labels", "disabled"]).where("name", "=", name).executeTakeFirst();
    if (!row) return undefined;
    return { name: row.name, roles: JSON.parse(row.roles) as string[], labels: JSON.parse(row.labels) as Record<string, string>, disabled: row.disabled === 1 };
  }

  async describe(name: string): Promise<User> {
    const row = await this.store.db.selectFrom("users").selectAll().where("name", "=", name).executeTakeFirst();
    if (!row) throw new MandateError("NOT_FOUND", `no user named ${JSON.stringify(name.slice(0, 80))}; see \`mandate users ls\``);
    return toUser(row, this.trustDomain);
  }

  async list(): Promise<User[]> {
    const rows = await this.store.db.selectFrom("users").selectAll().orderBy("name").execute();
    return rows.map((row) => toUser(row, this.trustDomain));
  }

  private totpEnrolment(name: string, secret: Buffer): { secret: string; uri: string } {
    return { secret: base32Encode(secret), uri: buildOtpauthUri(`Mandate (${this.trustDomain})`, name, secret) };
  }

  /** Creates a local user with a password (given, or generated and returned once) and a fresh TOTP secret. */
  async createLocal(input: { name: string; roles: string[]; labels: Record<string, string>; password?: string | undefined; createdBy: string }): Promise<{ user: User; secrets: EnrolmentSecrets }> {
    const name = validateUserName(input.name);
    const generated = input.password === undefined ? generatePassword() : undefined;
    const password = input.password ?? generated!;
    assertAcceptablePassword(password);
    const secret = generateTotpSecret();
    const t = this.now();
    const row: UserTable = {
      name,
      roles: JSON.stringify(validateRoles(input.roles)),
      labels: JSON.stringify(validateLabels(input.labels)),
      password_hash: await hashPassword(password),
      totp_secret: base32Encode(secret),
      totp_last_step: null,
      disabled: 0,
      sso_provider: null,
      sso_subject: null,
      email: null,
      created_at: t,
      created_by: input.createdBy,
      updated_at: t,
      last_login_at: null,
    };
    await this.store.transaction(async (tx) => {
      const existing = await tx.selectFrom("users").select("name").where("name", "=", name).executeTakeFirst();
      if (existing) throw new MandateError("ALREADY_EXISTS", `user ${name} already exists; change it with \`mandate users update ${name}\``);
      await tx.insertInto("users").values(row).execute();
    });
    return { user: toUser(row, this.trustDomain), secrets: { password: generated, totp: this.totpEnrolment(name, secret) } };
  }

  async update(name: string, change: UserUpdate): Promise<{ user: User; secrets: EnrolmentSecrets }> {
    const current = await this.describe(name);
    const set: Partial<UserTable> = { updated_at: this.now() };
    const secrets: EnrolmentSecrets = {};
    if (change.roles) set.roles = JSON.stringify(validateRoles(change.roles));
    if (change.labels) set.labels = JSON.stringify(validateLabels(change.labels));
    if (change.disabled !== undefined) set.disabled = change.disabled ? 1 : 0;
    if ((change.resetPassword !== undefined || change.resetTotp) && current.source === "sso") {
      throw new MandateError("INVALID_ARGUMENT", `user ${name} logs in through SSO provider ${current.ssoProvider}; its password and second factor live there`);
    }
    if (change.resetPassword !== undefined) {
      const password = change.resetPassword === true ? generatePassword() : change.resetPassword;
      assertAcceptablePassword(password);
      set.password_hash = await hashPassword(password);
      if (change.resetPassword === true) secrets.password = password;
    }
    if (change.resetTotp) {
      const secret = generateTotpSecret();
      set.totp_secret = base32Encode(secret);
      set.totp_last_step = null;
      secrets.totp = this.totpEnrolment(name, secret);
    }
    await this.store.db.updateTable("users").set(set).where("name", "=", name).execute();
    return { user: await this.describe(name), secrets };
  }

  async remove(name: string): Promise<User> {
    const user = await this.describe(name);
    await this.store.db.deleteFrom("users").where("name", "=", name).execute();
    return user;
  }

  async credentials(name: string): Promise<UserCredentials | undefined> {
    if (!USER_NAME.test(name)) return undefined;
    const row = await this.store.db.selectFrom("users").select(["name", "password_hash", "totp_secret", "totp_last_step", "disabled"]).where("name", "=", name).executeTakeFirst();
    if (!row) return undefined;
    return { name: row.name, passwordHash: row.password_hash, totpSecret: row.totp_secret ? base32Decode(row.totp_secret) : null, totpLastStep: row.totp_last_step, disabled: row.disabled === 1 };
  }

  /**
   * Marks a TOTP step used, atomically: of two logins racing with the same code (on one
   * replica or several), exactly one wins.
   */
  async consumeTotpStep(name: string, step: number): Promise<boolean> {
    const result = await this.store.db
      .updateTable("users")
      .set({ totp_last_step: step })
      .where("name", "=", name)
      .where((eb) => eb.or([eb("totp_last_step", "is", null), eb("totp_last_step", "<", step)]))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async recordLogin(name: string): Promise<void> {
    await this.store.db.updateTable("users").set({ last_login_at: this.now() }).where("name", "=", name).execute();
  }

  /**
   * The user an OIDC provider vouched for: found by (provider, subject), or created. Roles
   * follow the provider's role map at every login (the provider is the source of truth
   * for its users). A name already held by someone else is never taken over.
   */
  async provisionSso(input: { provider: string; subject: string; name: string; email?: string | undefined; roles: string[] }): Promise<{ user: User; created: boolean }> {
    const t = this.now();
    const roles = JSON.stringify(validateRoles(input.roles));
    return this.store.transaction(async (tx) => {
      const linked = await tx.selectFrom("users").selectAll().where("sso_provider", "=", input.provider).where("sso_subject", "=", input.subject).executeTakeFirst();
      if (linked) {
        await tx.updateTable("users").set({ roles, email: input.email ?? linked.email, updated_at: t }).where("name", "=", linked.name).execute();
        return { user: toUser({ ...linked, roles, email: input.email ?? linked.email, updated_at: t }, this.trustDomain), created: false };
      }
      const name = validateUserName(input.name);
      const taken = await tx.selectFrom("users").select("name").where("name", "=", name).executeTakeFirst();
      if (taken) throw new MandateError("LOGIN_FAILED", `the name ${name} belongs to another account; an administrator must resolve the clash`, { details: { reason: "name_taken" } });
      const row: UserTable = {
        name,
        roles,
        labels: "{}",
        password_hash: null,
        totp_secret: null,
        totp_last_step: null,
        disabled: 0,
        sso_provider: input.provider,
        sso_subject: input.subject,
        email: input.email ?? null,
        created_at: t,
        created_by: `sso:${input.provider}`,
        updated_at: t,
        last_login_at: null,
      };
      await tx.insertInto("users").values(row).execute();
      return { user: toUser(row, this.trustDomain), created: true };
    });
  }
}
