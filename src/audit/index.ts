export type * from "./event.js";
export { StoreAuditLog, stampEvent, type AuditLog } from "./log.js";
export { ulid } from "./ulid.js";
export { canonicalJson } from "./canonical-json.js";
export { GENESIS_CHAIN_HASH, eventLeafHash, nextChainHash } from "./chain.js";
export { verifyAuditChain, type ChainProblem, type ChainVerification } from "./verify.js";
export { searchAuditEvents, MAX_SEARCH_LIMIT, type AuditSearchFilter } from "./search.js";
export { hmacValue, redactString, redactValue, MAX_AUDITED_STRING, type RedactionSettings } from "./redact.js";
export { formatTrace, traceAudit, type AuditTrace, type TraceNode } from "./trace.js";
