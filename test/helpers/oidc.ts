import { randomBytes } from "node:crypto";
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type JWK, type JWTPayload, SignJWT, exportJWK, generateKeyPair } from "jose";
import Provider from "oidc-provider";

export interface TestIssuerKey {
  kid: string;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];
  publicJwk: JWK;
  /** The public key as PEM, which a confused verifier might take as an HMAC secret. */
  publicPem: string;
}

export async function issuerKey(kid = `k-${randomBytes(4).toString("hex")}`): Promise<TestIssuerKey> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = await exportJWK(publicKey);
  const { createPublicKey } = await import("node:crypto");
  const publicPem = createPublicKey({ key: jwk as never, format: "jwk" }).export({ type: "spki", format: "pem" }).toString();
  return { kid, privateKey, publicJwk: { ...jwk, kid, alg: "RS256", use: "sig" }, publicPem };
}

export function signToken(key: TestIssuerKey, claims: JWTPayload, header: Record<string, unknown> = {}): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: key.kid, typ: "JWT", ...header }).sign(key.privateKey);
}

/** An unsigned token (`alg: none`), which no verifier may accept. */
export function unsignedToken(claims: JWTPayload): string {
  const part = (value: object) => Buffer.from(JSON.stringify(value)).toString("base64url");
  return `${part({ alg: "none", typ: "JWT" })}.${part(claims)}.`;
}

/** HS256 keyed with the issuer's public key: the classic algorithm-confusion forgery. */
export function hs256WithPublicKey(key: TestIssuerKey, claims: JWTPayload): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256", kid: key.kid, typ: "JWT" }).sign(new TextEncoder().encode(key.publicPem));
}

/** An OIDC issuer as CI platforms run one: a discovery document and a JWKS over HTTP. */
export async function startJwksIssuer(keys: TestIssuerKey[]): Promise<{ issuer: string; jwksUrl: string; close(): Promise<void> }> {
  const server: Server = createServer((request, response) => {
    const { port } = server.address() as AddressInfo;
    const issuer = `http://127.0.0.1:${port}`;
    if (request.url === "/.well-known/openid-configuration") {
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ issuer, jwks_uri: `${issuer}/.well-known/jwks`, id_token_signing_alg_values_supported: ["RS256"] }));
    } else if (request.url === "/.well-known/jwks") {
      response.setHeader("content-type", "application/json");
      response.end(JSON.stringify({ keys: keys.map((k) => k.publicJwk) }));
    } else {
      response.statusCode = 404;
      response.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { issuer, jwksUrl: `${issuer}/.well-known/jwks`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/**
 * A real OpenID provider (the oidc-provider package) issuing JWT access tokens by the client
 * credentials grant, with extra claims the way GitLab CI ID tokens carry them.
 */
export async function startOidcProvider(options: { audience: string; claims: () => Record<string, unknown> }): Promise<{ issuer: string; mintToken(): Promise<string>; close(): Promise<void> }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: "op-1", alg: "RS256", use: "sig" };
  const resource = "https://mandate.test";
  const provider = new Provider(issuer, {
    jwks: { keys: [jwk as never] },
    clients: [{ client_id: "ci-job", client_secret: "ci-job-secret", grant_types: ["client_credentials"], redirect_uris: [], response_types: [] }],
    features: {
      clientCredentials: { enabled: true },
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: "join", audience: options.audience, accessTokenTTL: 300, accessTokenFormat: "jwt", jwt: { sign: { alg: "RS256" } } }),
      },
    },
    ttl: { ClientCredentials: 300 },
    extraTokenClaims: async () => options.claims(),
  });
  server.on("request", provider.callback());
  return {
    issuer,
    async mintToken() {
      const response = await fetch(`${issuer}/token`, {
        method: "POST",
        headers: { authorization: `Basic ${Buffer.from("ci-job:ci-job-secret").toString("base64")}`, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "client_credentials", scope: "join", resource }).toString(),
      });
      const body = (await response.json()) as { access_token?: string; error?: string };
      if (!body.access_token) throw new Error(`the provider refused: ${body.error}`);
      return body.access_token;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
