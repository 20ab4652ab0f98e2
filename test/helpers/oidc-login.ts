import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";

export interface TestAccount {
  preferred_username?: string;
  email?: string;
  email_verified?: boolean;
  groups?: string[];
  [claim: string]: unknown;
}

export interface OidcLoginProvider {
  issuer: string;
  provider: Provider;
  /**
   * Plays the browser: follows the authorization URL through the provider's login and
   * consent interactions (plain HTTP, cookies kept by hand) as `accountId`, and returns
   * where the provider finally redirects (the CLI's loopback callback, with code and state).
   */
  authorize(authorizationUrl: string, accountId: string): Promise<string>;
  close(): Promise<void>;
}

function readForm(request: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    let body = "";
    request.on("data", (chunk: Buffer) => (body += chunk.toString()));
    request.on("end", () => resolve(new URLSearchParams(body)));
    request.on("error", reject);
  });
}

/**
 * A real OpenID provider (the oidc-provider package) for interactive logins: an
 * authorization code flow with PKCE for a native client on a loopback redirect, ID tokens
 * carrying the account's claims, and minimal login/consent interaction endpoints.
 */
export async function startOidcLoginProvider(options: {
  clientId: string;
  clientSecret?: string;
  accounts: Record<string, TestAccount>;
  idTokenAlg?: "RS256" | "ES256";
  /** a confidential web client too (a server-side callback, as the OAuth login page uses) */
  webClient?: { clientId: string; clientSecret: string; redirectUris: string[] };
}): Promise<OidcLoginProvider> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const alg = options.idTokenAlg ?? "RS256";
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: "login-1", alg, use: "sig" };
  const provider = new Provider(issuer, {
    jwks: { keys: [jwk as never] },
    clients: [
      {
        client_id: options.clientId,
        ...(options.clientSecret ? { client_secret: options.clientSecret, token_endpoint_auth_method: "client_secret_basic" } : { token_endpoint_auth_method: "none" }),
        application_type: "native",
        redirect_uris: ["http://127.0.0.1/callback"],
        grant_types: ["authorization_code"],
        response_types: ["code"],
        id_token_signed_response_alg: alg,
      },
      ...(options.webClient
        ? [
            {
              client_id: options.webClient.clientId,
              client_secret: options.webClient.clientSecret,
              token_endpoint_auth_method: "client_secret_basic",
              application_type: "web",
              redirect_uris: options.webClient.redirectUris,
              grant_types: ["authorization_code"],
              response_types: ["code"],
              id_token_signed_response_alg: alg,
            },
          ]
        : []),
    ],
    claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["preferred_username", "name"], groups: ["groups"] },
    scopes: ["openid", "email", "profile", "groups"],
    // Claims go into the ID token itself, which is all Mandate reads.
    conformIdTokenClaims: false,
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    cookies: { keys: ["test-cookie-signing-key"] },
    findAccount: async (_ctx: unknown, id: string) => {
      const account = options.accounts[id];
      if (!account) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...account }) };
    },
  });
  const callback = provider.callback();
  server.on("request", async (request: IncomingMessage, response: ServerResponse) => {
    const match = /^\/interaction\/([^/?]+)(\/login|\/confirm)?/.exec(request.url ?? "");
    if (!match) return void callback(request, response);
    try {
      const details = await provider.interactionDetails(request, response);
      if (request.method === "GET") {
        response.setHeader("content-type", "application/json");
        return void response.end(JSON.stringify({ uid: details.uid, prompt: details.prompt.name }));
      }
      if (match[2] === "/login") {
        const form = await readForm(request);
        return void (await provider.interactionFinished(request, response, { login: { accountId: form.get("account") ?? "" } }, { mergeWithLastSubmission: false }));
      }
      const { prompt, params, session } = details;
      const grant = new provider.Grant({ accountId: session!.accountId, clientId: params.client_id as string });
      const missing = prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(" "));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      const grantId = await grant.save();
      await provider.interactionFinished(request, response, { consent: { grantId } }, { mergeWithLastSubmission: true });
    } catch (error) {
      response.statusCode = 400;
      response.end(String(error));
    }
  });

  async function authorize(authorizationUrl: string, accountId: string): Promise<string> {
    const jar = new Map<string, string>();
    const send = async (url: string, init: RequestInit = {}) => {
      const response = await fetch(url, { ...init, redirect: "manual", headers: { ...(init.headers as Record<string, string>), cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; ") } });
      for (const cookie of response.headers.getSetCookie()) {
        const [pair] = cookie.split(";");
        const index = pair!.indexOf("=");
        jar.set(pair!.slice(0, index), pair!.slice(index + 1));
      }
      return response;
    };
    let url = authorizationUrl;
    for (let hop = 0; hop < 12; hop++) {
      if (!url.startsWith(issuer)) return url;
      const response = await send(url);
      const interaction = /\/interaction\/([^/?]+)$/.exec(new URL(url).pathname);
      if (interaction && response.status === 200) {
        const { prompt } = (await response.json()) as { prompt: string };
        const action = prompt === "login" ? "login" : "confirm";
        const submitted = await send(`${issuer}/interaction/${interaction[1]}/${action}`, {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          body: new URLSearchParams({ account: accountId }).toString(),
        });
        url = new URL(submitted.headers.get("location") ?? "", issuer).toString();
        continue;
      }
      const location = response.headers.get("location");
      if (!location) throw new Error(`the provider answered ${url} with HTTP ${response.status}: ${await response.text()}`);
      url = new URL(location, url).toString();
    }
    throw new Error("the provider's login did not finish within 12 redirects");
  }

  return { issuer, provider, authorize, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
