import { randomBytes } from "node:crypto";
import { MandateError } from "../errors/index.js";
import type { JoinRuleTable, Store } from "../store/index.js";
import { type AttestedJoinMethod, ATTESTED_JOIN_METHODS, type ClaimCondition, validateConditions } from "./claim-rules.js";

/** Where GitHub Actions' OIDC tokens come from; the default issuer of a github rule. */
export const GITHUB_ACTIONS_ISSUER = "https://token.actions.githubusercontent.com";

export interface JoinRule {
  id: string;
  method: AttestedJoinMethod;
  agent: string;
  issuer: string;
  audience: string;
  /** The JWKS given inline, when the rule was made with --jwks-file. */
  jwks?: { keys: Record<string, unknown>[] };
  /** Where keys are fetched from; with neither this nor `jwks`, OIDC discovery on the issuer. */
  jwksUrl?: string;
  allow: ClaimCondition[];
  createdAt: string;
  createdBy: string;
}

export interface JoinRuleInput {
  method: AttestedJoinMethod;
  agent: string;
  issuer?: string | undefined;
  audience: string;
  jwks?: unknown;
  jwksUrl?: string | undefined;
  allow: ClaimCondition[];
  createdBy: string;
}

function toRule(row: JoinRuleTable): JoinRule {
  return {
    id: row.id,
    method: row.method as AttestedJoinMethod,
    agent: row.agent_name,
    issuer: row.issuer,
    audience: row.audience,
    ...(row.jwks ? { jwks: JSON.parse(row.jwks) as JoinRule["jwks"] } : {}),
    ...(row.jwks_url ? { jwksUrl: row.jwks_url } : {}),
    allow: JSON.parse(row.conditions) as ClaimCondition[],
    createdAt: new Date(Number(row.created_at)).toISOString(),
    createdBy: row.created_by,
  };
}

const LOOPBACK = new Set(["127.0.0.1", "[::1]", "localhost"]);

/** Keys and issuers are fetched over HTTPS; plain HTTP only to this host (a local test provider). */
export function validateFetchUrl(value: string, what: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new MandateError("INVALID_ARGUMENT", `${what} ${JSON.stringify(value)} is not a URL`);
  }
  if (url.protocol !== "https:" && !(url.protocol === "http:" && LOOPBACK.has(url.hostname))) {
    throw new MandateError("INVALID_ARGUMENT", `${what} must be https:// (plain http only for a provider on this host)`);
  }
  if (url.username || url.password) throw new MandateError("INVALID_ARGUMENT", `${what} must not carry credentials`);
  return value;
}

/** A JWKS given inline must hold public, asymmetric keys only. */
export function validateJwks(value: unknown): { keys: Record<string, unknown>[] } {
  const keys = (value as { keys?: unknown })?.keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > 64) throw new MandateError("INVALID_ARGUMENT", "the JWKS must be {\"keys\": [...]} with 1 to 64 keys");
  for (const key of keys as Record<string, unknown>[]) {
    if (!key || typeof key !== "object" || !["RSA", "EC", "OKP"].includes(key.kty as string)) throw new MandateError("INVALID_ARGUMENT", "JWKS keys must be RSA, EC or OKP public keys");
    if ("d" in key || "p" in key || "k" in key) throw new MandateError("INVALID_ARGUMENT", "the JWKS holds private or symmetric key material; give the issuer's public keys only");
  }
  return { keys: keys as Record<string, unknown>[] };
}

/** Join rules: which OIDC tokens (Kubernetes, GitHub Actions, any OIDC issuer) may join as which agent. */
export class JoinRuleRegistry {
  constructor(
    private readonly store: Store,
    private readonly now: () => number = Date.now,
  ) {}

  async create(input: JoinRuleInput): Promise<JoinRule> {
    if (!ATTESTED_JOIN_METHODS.includes(input.method)) throw new MandateError("INVALID_ARGUMENT", `unknown join method ${JSON.stringify(input.method)}`);
    const issuer = input.issuer ?? (input.method === "github" ? GITHUB_ACTIONS_ISSUER : undefined);
    if (!issuer) throw new MandateError("INVALID_ARGUMENT", `a ${input.method} join rule needs --issuer (the iss claim its tokens carry)`);
    if (issuer.length > 1024) throw new MandateError("INVALID_ARGUMENT", "--issuer is too long");
    if (!input.audience || input.audience.length > 512) throw new MandateError("INVALID_ARGUMENT", "--audience is required: the token must be minted for Mandate, not for anything else");
    if (input.jwks !== undefined && input.jwksUrl !== undefined) throw new MandateError("INVALID_ARGUMENT", "give --jwks-file or --jwks-url, not both");
    const jwks = input.jwks === undefined ? undefined : validateJwks(input.jwks);
    const jwksUrl = input.jwksUrl === undefined ? undefined : validateFetchUrl(input.jwksUrl, "--jwks-url");
    // Discovery fetches <issuer>/.well-known/openid-configuration, so the issuer must then be a fetchable URL.
    if (!jwks && !jwksUrl) validateFetchUrl(issuer, "--issuer (used for OIDC discovery without --jwks-file or --jwks-url)");
    const allow = validateConditions(input.method, input.allow);
    const agent = await this.store.db.selectFrom("agents").select("name").where("name", "=", input.agent).executeTakeFirst();
    if (!agent) throw new MandateError("NOT_FOUND", `no agent named ${JSON.stringify(input.agent)}; create it first with \`mandate agents add\``);
    const row: JoinRuleTable = {
      id: `jr-${randomBytes(6).toString("hex")}`,
      method: input.method,
      agent_name: input.agent,
      issuer,
      audience: input.audience,
      jwks: jwks ? JSON.stringify(jwks) : null,
      jwks_url: jwksUrl ?? null,
      conditions: JSON.stringify(allow),
      created_at: this.now(),
      created_by: input.createdBy,
    };
    await this.store.db.insertInto("join_rules").values(row).execute();
    return toRule(row);
  }

  async list(): Promise<JoinRule[]> {
    return (await this.store.db.selectFrom("join_rules").selectAll().orderBy("created_at").orderBy("id").execute()).map(toRule);
  }

  async forIssuer(method: AttestedJoinMethod, issuer: string): Promise<JoinRule[]> {
    const rows = await this.store.db.selectFrom("join_rules").selectAll().where("method", "=", method).where("issuer", "=", issuer).orderBy("created_at").orderBy("id").execute();
    return rows.map(toRule);
  }

  async remove(id: string): Promise<JoinRule> {
    const row = await this.store.db.selectFrom("join_rules").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw new MandateError("NOT_FOUND", `no join rule ${JSON.stringify(id)}; see \`mandate joins ls\``);
    await this.store.db.deleteFrom("join_rules").where("id", "=", id).execute();
    return toRule(row);
  }
}
