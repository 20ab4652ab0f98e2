import { randomBytes, timingSafeEqual } from "node:crypto";
import { MandateError } from "../../errors/index.js";
import type { SsoLoginTable, Store } from "../../store/index.js";
import { LoginFailure, type LoginMethod, type UserCredential, type UserLoginService } from "../login-service.js";
import type { UserPrincipal } from "../registry.js";
import { mapClaims } from "./claims.js";
import type { OidcRelyingParty } from "./oidc-client.js";
import type { SsoProviderRegistry } from "./providers.js";

const LOGIN_TTL_MS = 10 * 60_000;
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]", "localhost"]);

/** The CLI's redirect target must be a loopback listener (RFC 8252 §7.3): nothing else could receive the code on the user's machine. */
export function validateLoopbackRedirect(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new MandateError("INVALID_ARGUMENT", "redirectUri is not a URL");
  }
  if (url.protocol !== "http:" || !LOOPBACK_HOSTS.has(url.hostname) || url.username || url.password || url.hash) {
    throw new MandateError("INVALID_ARGUMENT", "redirectUri must be http://127.0.0.1:PORT/… (a loopback listener on the user's machine)");
  }
  return url.toString();
}

const random = () => randomBytes(32).toString("base64url");

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * SSO logins through the control plane: it keeps state, nonce and the PKCE verifier (in
 * the store, so any replica can finish what another started), exchanges the code with
 * the client secret only it holds, and issues the same user certificate a local login does.
 */
export class SsoLoginService {
  constructor(
    private readonly store: Store,
    private readonly providers: SsoProviderRegistry,
    private readonly relyingParty: OidcRelyingParty,
    private readonly login: UserLoginService,
    private readonly now: () => number = Date.now,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {}

  /**
   * Starts an SSO login. The CLI's redirect target must be a loopback listener; the OAuth
   * login page passes `oauthRequest` and the control plane's own callback, which is trusted.
   */
  async start(input: { provider: string; redirectUri: string; address: string; oauthRequest?: string | undefined }): Promise<{ loginId: string; authorizationUrl: string; expiresAt: string }> {
    return this.login.audited({ address: input.address, method: input.oauthRequest ? "oauth" : "sso", provider: input.provider }, async () => {
      const redirectUri = input.oauthRequest ? input.redirectUri : validateLoopbackRedirect(input.redirectUri);
      const provider = await this.providers.get(input.provider);
      const discovery = await this.relyingParty.discover(provider.issuer);
      const pending = {
        id: `sl-${randomBytes(12).toString("hex")}`,
        provider: provider.name,
        state: random(),
        nonce: random(),
        code_verifier: random(),
        redirect_uri: redirectUri,
        expires_at: this.now() + LOGIN_TTL_MS,
        oauth_request: input.oauthRequest ?? null,
      };
      await this.store.db.deleteFrom("sso_logins").where("expires_at", "<", this.now()).execute();
      await this.store.db.insertInto("sso_logins").values(pending).execute();
      return {
        loginId: pending.id,
        authorizationUrl: this.relyingParty.authorizationUrl(discovery, provider, { redirectUri, state: pending.state, nonce: pending.nonce, codeVerifier: pending.code_verifier }),
        expiresAt: new Date(pending.expires_at).toISOString(),
      };
    });
  }

  /** Takes a pending login, by id (CLI) or by state (browser callback), and deletes it: good for one finish only. */
  private take(by: { id: string } | { state: string }): Promise<SsoLoginTable | undefined> {
    return this.store.transaction(async (tx) => {
      const query = tx.selectFrom("sso_logins").selectAll();
      const row = await ("id" in by ? query.where("id", "=", by.id) : query.where("state", "=", by.state)).executeTakeFirst();
      if (row) await tx.deleteFrom("sso_logins").where("id", "=", row.id).execute();
      return row;
    });
  }

  /** The provider's answer to a pending login, checked and mapped to a user who may log in. */
  private async authenticatePending(pending: SsoLoginTable | undefined, input: { state: string; code: string; address: string; method: LoginMethod }) {
    return this.login.audited({ address: input.address, method: input.method, provider: pending?.provider }, async () => {
      if (!pending || pending.expires_at <= this.now()) throw new LoginFailure("sso_failed", new MandateError("LOGIN_FAILED", "SSO login failed: unknown or expired login; start again"));
      if (!sameString(pending.state, input.state)) throw new LoginFailure("sso_failed", new MandateError("LOGIN_FAILED", "SSO login failed: state does not match this login"));
      const provider = await this.providers.get(pending.provider);
      const discovery = await this.relyingParty.discover(provider.issuer);
      const idToken = await this.relyingParty.exchangeCode(discovery, provider, { code: input.code, redirectUri: pending.redirect_uri, codeVerifier: pending.code_verifier }, this.env);
      const claims = await this.relyingParty.verifyIdToken(discovery, provider, idToken, pending.nonce);
      const mapped = mapClaims(provider, claims as Record<string, unknown>);
      let provisioned;
      try {
        provisioned = await this.login.users.provisionSso({ provider: provider.name, subject: mapped.subject, name: mapped.name, email: mapped.email, roles: mapped.roles });
      } catch (error) {
        if (error instanceof MandateError && error.code === "LOGIN_FAILED") throw new LoginFailure("name_taken", error);
        throw error;
      }
      const principal = await this.login.assertMayLogIn(provisioned.user.name, input.address);
      return { principal, provider: provider.name, identity: { ...mapped, created: provisioned.created } };
    });
  }

  /**
   * The browser's return from the provider to the OAuth login page's SSO button: the
   * person is authenticated; the caller turns that into an authorization code.
   */
  async finishForOAuth(input: { state: string; code: string; address: string }): Promise<{ principal: UserPrincipal; oauthRequest: string; provider: string }> {
    const pending = await this.take({ state: input.state.slice(0, 256) });
    if (pending && !pending.oauth_request) throw new MandateError("LOGIN_FAILED", "this SSO login belongs to `mandate login`, not to a browser sign-in");
    const { principal, provider } = await this.authenticatePending(pending, { ...input, method: "oauth" });
    return { principal, oauthRequest: pending!.oauth_request!, provider };
  }

  async finish(input: { loginId: string; state: string; code: string; csr: string; ttlSeconds?: number | undefined; address: string }): Promise<UserCredential> {
    const csr = await this.login.parseCsrOrFail(input.csr, { user: "", address: input.address, method: "sso" });
    const pending = await this.take({ id: input.loginId });
    if (pending?.oauth_request) throw new MandateError("LOGIN_FAILED", "this SSO login belongs to a browser sign-in, not to `mandate login`");
    const { principal, provider, identity } = await this.authenticatePending(pending, { ...input, method: "sso" });
    return this.login.issueCertificate(principal, csr, {
      method: "sso",
      address: input.address,
      ttlSeconds: input.ttlSeconds,
      provider,
      details: { subject: identity.subject, groups: identity.matchedGroups, provisioned: identity.created },
    });
  }

  /** Provider names for the OAuth login page's buttons. */
  async providerNames(): Promise<string[]> {
    return (await this.providers.list()).map((p) => p.name);
  }
}
