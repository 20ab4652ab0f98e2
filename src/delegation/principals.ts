import { MandateError } from "../errors/index.js";
import type { AgentRegistry } from "../identity/index.js";
import type { AccessRequest, Decision, Labels, Principal } from "../policy/index.js";

/** What the delegation layer needs of the policy engine (the policy module's engine satisfies it). */
export interface AccessPolicy {
  authorize(request: AccessRequest): Decision;
  /** may this person decide access requests for this resource string? */
  mayApprove?(principal: Principal, resource: string): boolean;
}

/** What it needs of the user registry (the users module's registry satisfies it). */
export interface UserDirectory {
  get(name: string): Promise<{ name: string; roles: string[]; labels?: Labels; disabled?: boolean } | undefined>;
}

const CACHE_MS = 1000;

/**
 * Roles and labels come from the registries, never from the request. Looked-up
 * principals are kept for one second, the same bound within which revocations are seen,
 * so a role change reaches the request path as fast as a revocation does.
 */
export class PrincipalResolver {
  private cache = new Map<string, { at: number; principal: Principal }>();

  constructor(
    private readonly agents: AgentRegistry,
    private readonly users: () => UserDirectory | undefined,
    private readonly trustDomain: string,
    private readonly now: () => number = Date.now,
  ) {}

  spiffeIdOf(kind: "user" | "agent", name: string): string {
    return `spiffe://${this.trustDomain}/${kind}/${name}`;
  }

  async resolve(kind: "user" | "agent", name: string): Promise<Principal> {
    const key = `${kind}:${name}`;
    const hit = this.cache.get(key);
    const t = this.now();
    if (hit && t >= hit.at && t - hit.at < CACHE_MS) return hit.principal;
    const principal = kind === "agent" ? await this.agent(name) : await this.user(name);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { at: t, principal });
    return principal;
  }

  private async agent(name: string): Promise<Principal> {
    const agent = await this.agents.get(name);
    return { kind: "agent", name: agent.name, spiffeId: agent.spiffeId, roles: agent.roles, labels: agent.labels };
  }

  private async user(name: string): Promise<Principal> {
    const users = this.users();
    if (!users) throw new MandateError("PERMISSION_DENIED", `user ${name} cannot be resolved: no user registry is configured in this control plane`);
    const user = await users.get(name);
    if (!user) throw new MandateError("NOT_FOUND", `no user named ${JSON.stringify(name)}; see \`mandate users ls\``);
    if (user.disabled) throw new MandateError("PERMISSION_DENIED", `user ${name} is disabled`);
    return { kind: "user", name: user.name, roles: user.roles, labels: user.labels ?? {} };
  }
}
