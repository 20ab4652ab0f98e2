export type * from "./event.js";
export { StoreAuditLog, stampEvent, type AuditLog } from "./log.js";
export { ulid } from "./ulid.js";
