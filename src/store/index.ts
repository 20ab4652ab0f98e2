export { Store, redactUrl, type OpenStoreOptions, type StoreKind, type StoreTx } from "./store.js";
export type * from "./schema.js";
