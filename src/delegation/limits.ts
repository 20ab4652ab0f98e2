/** No grant outlives a week, whatever a role's delegate rule says; signing keys are kept this long after they stop signing. */
export const MAX_GRANT_TTL_MS = 7 * 24 * 3600_000;
