import { z } from "zod";
import { MandateError } from "../../errors/index.js";
import { validateRoles } from "../../identity/index.js";
import { validateFetchUrl } from "../../join/join-rules.js";
import type { Store } from "../../store/index.js";

/** An OIDC provider people log in through. It holds no secret: the client secret is named by an environment variable of the control plane. */
export interface SsoProvider {
  name: string;
  issuer: string;
  clientId: string;
  clientSecretEnv?: string | undefined;
  scopes: string[];
  /** the claim that names the user (default preferred_username, falling back to email) */
  claimUsername: string;
  /** the claim holding the user's groups, e.g. groups */
  claimRoles?: string | undefined;
  /** provider group → Mandate roles */
  roleMap: Record<string, string[]>;
  /** when non-empty, only verified emails in these domains may log in */
  allowedEmailDomains: string[];
  createdAt: string;
  createdBy: string;
}

const PROVIDER_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const CLAIM = z.string().min(1).max(128);
export const SsoProviderInput = z.strictObject({
  name: z.string().min(1).max(63),
  issuer: z.string().min(1).max(1024),
  clientId: z.string().min(1).max(512),
  clientSecretEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,127}$/, "an environment variable name").optional(),
  scopes: z.array(z.string().regex(/^[\x21\x23-\x5b\x5d-\x7e]{1,128}$/, "a scope token")).max(32).default(["openid", "profile", "email"]),
  claimUsername: CLAIM.default("preferred_username"),
  claimRoles: CLAIM.optional(),
  roleMap: z.record(z.string().min(1).max(256), z.array(z.string()).min(1).max(64)).default({}),
  allowedEmailDomains: z.array(z.string().min(1).max(253)).max(64).default([]),
});
export type SsoProviderInput = z.input<typeof SsoProviderInput>;

export class SsoProviderRegistry {
  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  async add(input: z.infer<typeof SsoProviderInput>, createdBy: string): Promise<SsoProvider> {
    if (!PROVIDER_NAME.test(input.name)) throw new MandateError("INVALID_ARGUMENT", `invalid provider name ${JSON.stringify(input.name)}: use lower-case letters, digits, '-' or '_'`);
    validateFetchUrl(input.issuer, "--issuer");
    if (!input.scopes.includes("openid")) throw new MandateError("INVALID_ARGUMENT", "--scopes must include openid (the login needs an ID token)");
    if (Object.keys(input.roleMap).length > 0 && !input.claimRoles) throw new MandateError("INVALID_ARGUMENT", "--role-map needs --claim-roles (the claim that holds the groups, e.g. groups)");
    const roleMap: Record<string, string[]> = {};
    for (const [group, roles] of Object.entries(input.roleMap)) roleMap[group] = validateRoles(roles);
    const provider: SsoProvider = {
      ...input,
      roleMap,
      allowedEmailDomains: input.allowedEmailDomains.map((d) => d.toLowerCase().replace(/^@/, "")),
      createdAt: new Date(this.now()).toISOString(),
      createdBy,
    };
    await this.store.transaction(async (tx) => {
      const existing = await tx.selectFrom("sso_providers").select("name").where("name", "=", input.name).executeTakeFirst();
      if (existing) throw new MandateError("ALREADY_EXISTS", `SSO provider ${input.name} already exists; remove it first with \`mandate sso rm ${input.name}\``);
      const { createdAt: _c, createdBy: _b, ...definition } = provider;
      await tx.insertInto("sso_providers").values({ name: provider.name, definition: JSON.stringify(definition), created_at: this.now(), created_by: createdBy }).execute();
    });
    return provider;
  }

  async get(name: string): Promise<SsoProvider> {
    const row = await this.store.db.selectFrom("sso_providers").selectAll().where("name", "=", name).executeTakeFirst();
    if (!row) throw new MandateError("NOT_FOUND", `no SSO provider named ${JSON.stringify(name.slice(0, 80))}; see \`mandate sso ls\``);
    return { ...(JSON.parse(row.definition) as Omit<SsoProvider, "createdAt" | "createdBy">), createdAt: new Date(row.created_at).toISOString(), createdBy: row.created_by };
  }

  async list(): Promise<SsoProvider[]> {
    const rows = await this.store.db.selectFrom("sso_providers").select("name").orderBy("name").execute();
    return Promise.all(rows.map((r) => this.get(r.name)));
  }

  async remove(name: string): Promise<SsoProvider> {
    const provider = await this.get(name);
    await this.store.db.deleteFrom("sso_providers").where("name", "=", name).execute();
    return provider;
  }
}
