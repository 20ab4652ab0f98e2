export type * from "./types.js";
export type * from "./gate.js";
