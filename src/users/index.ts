export { UserRegistry, validateUserName, type EnrolmentSecrets, type User, type UserPrincipal, type UserUpdate } from "./registry.js";
export {
  DEFAULT_USER_CERT_MAX_TTL_MS,
  DEFAULT_USER_CERT_TTL_MS,
  DEFAULT_USER_LOGIN_SETTINGS,
  LoginFailure,
  UserLoginService,
  type LoginFailureReason,
  type UserCredential,
  type UserLoginSettings,
} from "./login-service.js";
export { DEFAULT_LOGIN_LIMITS, LoginGuard, type LoginLimits } from "./login-guard.js";
export { registerUserRoutes, requireUser } from "./routes.js";
export { base32Decode, base32Encode } from "./base32.js";
export { buildOtpauthUri, parseOtpauthUri, type OtpauthKey } from "./otpauth.js";
export { checkTotp, hotp, totp, totpStep } from "./totp.js";
export { hashPassword, verifyPassword } from "./password.js";
export { SsoProviderRegistry, type SsoProvider } from "./sso/providers.js";
export { mapClaims, normalizeUserName, type MappedIdentity } from "./sso/claims.js";
export { ID_TOKEN_ALGORITHMS, OidcRelyingParty } from "./sso/oidc-client.js";
export { ACCESS_TOKEN_PREFIX, DEFAULT_OAUTH_SETTINGS, MCP_SCOPE, OAuthAuthorizationServer, type OAuthSettings } from "./oauth/authorization-server.js";
export { mcpCallerAuthenticator, registerOAuthRoutes } from "./oauth/routes.js";
