import { MandateError } from "../../errors/index.js";
import type { SsoProvider } from "./providers.js";

export interface MappedIdentity {
  subject: string;
  name: string;
  email?: string | undefined;
  roles: string[];
  /** the provider groups that produced roles (for the audit record) */
  matchedGroups: string[];
}

const MAX_GROUPS = 512;

function denied(reason: string): MandateError {
  return new MandateError("LOGIN_FAILED", `SSO login refused: ${reason}`, { details: { reason: "sso_failed" } });
}

/**
 * A provider's display name for a person as a Mandate user name (a SPIFFE path
 * segment): lower case, the part before any '@', characters outside [a-z0-9._-] made
 * '-'. Two people who normalize to one name cannot share it: users are linked to the
 * provider's `sub`, and a second subject meeting a taken name is refused.
 */
export function normalizeUserName(value: string): string {
  const local = value.toLowerCase().split("@")[0] ?? "";
  const name = local
    .replace(/[^a-z0-9._-]/g, "-")
    .replace(/^[^a-z0-9]+/, "")
    .slice(0, 63);
  if (!name || name === "me") throw denied(`the provider's user name ${JSON.stringify(value.slice(0, 80))} has no usable characters`);
  return name;
}

function emailDomain(email: string): string | undefined {
  const at = email.lastIndexOf("@");
  if (at <= 0 || at === email.length - 1) return undefined;
  return email.slice(at + 1).toLowerCase();
}

function groupsOf(value: unknown): string[] {
  if (typeof value === "string") return value.split(/[\s,]+/).filter(Boolean);
  if (Array.isArray(value)) return value.filter((g): g is string => typeof g === "string");
  return [];
}

/**
 * Turns verified ID token claims into a Mandate user: who (sub, name, email), whether
 * the email domain is allowed (only a verified email counts), and which roles the
 * provider's groups map to. Only roles named in the role map can ever come out.
 */
export function mapClaims(provider: SsoProvider, claims: Record<string, unknown>): MappedIdentity {
  const subject = claims.sub;
  if (typeof subject !== "string" || subject.length === 0 || subject.length > 255) throw denied("the ID token has no usable sub claim");
  const email = typeof claims.email === "string" && claims.email.length <= 320 ? claims.email : undefined;
  if (provider.allowedEmailDomains.length > 0) {
    if (!email) throw denied("the provider sent no email address, and this provider only admits listed email domains");
    if (claims.email_verified !== true) throw denied(`the provider has not verified ${email}`);
    const domain = emailDomain(email);
    if (!domain || !provider.allowedEmailDomains.includes(domain)) throw denied(`email domain ${JSON.stringify(domain ?? "")} is not allowed for ${provider.name}`);
  }
  const rawName = claims[provider.claimUsername] ?? (provider.claimUsername === "preferred_username" ? email : undefined);
  if (typeof rawName !== "string" || rawName.length === 0) throw denied(`the ID token has no ${provider.claimUsername} claim to name the user by`);
  const roles: string[] = [];
  const matchedGroups: string[] = [];
  if (provider.claimRoles) {
    for (const group of groupsOf(claims[provider.claimRoles]).slice(0, MAX_GROUPS)) {
      // Own-property lookup: a group called "__proto__" or "constructor" maps to nothing.
      const mapped = Object.hasOwn(provider.roleMap, group) ? provider.roleMap[group] : undefined;
      if (!mapped) continue;
      matchedGroups.push(group);
      for (const role of mapped) if (!roles.includes(role)) roles.push(role);
    }
  }
  return { subject, name: normalizeUserName(rawName), ...(email ? { email } : {}), roles, matchedGroups };
}
