export { DEFAULT_JOIN_TOKEN_TTL_MS, TokenJoinService, type JoinRequest, type JoinResult } from "./token-join.js";
export { generateJoinToken, hashJoinSecret, parseCaPin, parseJoinToken } from "./join-token.js";
