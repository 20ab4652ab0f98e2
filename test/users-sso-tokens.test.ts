import { describe, expect, it, beforeAll, afterAll } from "vitest";
import { ID_TOKEN_ALGORITHMS, OidcRelyingParty, type SsoProvider } from "../src/users/index.js";
import { hs256WithPublicKey, issuerKey, signToken, startJwksIssuer, unsignedToken, type TestIssuerKey } from "./helpers/oidc.js";

/** ID token verification against a real HTTP issuer (discovery + JWKS), with hostile tokens. */
describe("SSO ID token verification", () => {
  let key: TestIssuerKey;
  let other: TestIssuerKey;
  let issuer: Awaited<ReturnType<typeof startJwksIssuer>>;
  const rp = new OidcRelyingParty();
  let provider: SsoProvider;

  beforeAll(async () => {
    key = await issuerKey();
    other = await issuerKey();
    issuer = await startJwksIssuer([key]);
    provider = { name: "corp", issuer: issuer.issuer, clientId: "mandate-cli", scopes: ["openid"], claimUsername: "preferred_username", roleMap: {}, allowedEmailDomains: [], createdAt: "", createdBy: "" };
  });
  afterAll(() => issuer.close());

  const now = () => Math.floor(Date.now() / 1000);
  const claims = (over: Record<string, unknown> = {}) => ({ iss: issuer.issuer, aud: "mandate-cli", sub: "u1", iat: now(), exp: now() + 300, nonce: "n-1", ...over });
  // Discovery is covered end to end against oidc-provider; here the key set is what matters.
  const verify = async (token: string, nonce = "n-1") =>
    rp.verifyIdToken({ issuer: issuer.issuer, authorizationEndpoint: `${issuer.issuer}/auth`, tokenEndpoint: `${issuer.issuer}/token`, jwksUri: issuer.jwksUrl, algorithms: ID_TOKEN_ALGORITHMS }, provider, token, nonce);

  it("accepts a well-formed token", async () => {
    expect((await verify(await signToken(key, claims()))).sub).toBe("u1");
  });

  it.each([
    ["another audience", { aud: "someone-else" }, /aud/],
    ["another issuer", { iss: "https://evil.example" }, /iss/],
    ["expired", { exp: now() - 120, iat: now() - 600 }, /expired/],
    ["no iat", { iat: undefined }, /iat/],
    ["several audiences without azp", { aud: ["mandate-cli", "other"] }, /azp/],
    ["azp of another client", { azp: "other" }, /azp/],
    ["no nonce", { nonce: undefined }, /nonce/],
    ["another login's nonce", { nonce: "n-2" }, /nonce/],
  ])("refuses a token with %s", async (_what, over, message) => {
    await expect(verify(await signToken(key, claims(over)))).rejects.toThrow(message);
  });

  it("refuses alg none, HS256 keyed with the public key, and a key the issuer does not publish", async () => {
    await expect(verify(unsignedToken(claims()))).rejects.toMatchObject({ code: "LOGIN_FAILED" });
    await expect(verify(await hs256WithPublicKey(key, claims()))).rejects.toThrow(/algorithm/);
    await expect(verify(await signToken(other, claims()))).rejects.toMatchObject({ code: "LOGIN_FAILED" });
  });
});
