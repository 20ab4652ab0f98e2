export { DEFAULT_JOIN_TOKEN_TTL_MS, TokenJoinService, type JoinRequest, type JoinResult } from "./token-join.js";
export { generateJoinToken, hashJoinSecret, parseCaPin, parseJoinToken } from "./join-token.js";
export { AttestedJoinService, type AttestedJoinRequest } from "./attested-join.js";
export { ATTESTED_JOIN_METHODS, parseAllow, type AttestedJoinMethod, type ClaimCondition } from "./claim-rules.js";
export { GITHUB_ACTIONS_ISSUER, JoinRuleRegistry, type JoinRule } from "./join-rules.js";
export { JoinTokenVerifier } from "./oidc-token.js";
