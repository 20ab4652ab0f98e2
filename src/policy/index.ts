export type * from "./types.js";
export type * from "./gate.js";
export { compileGlob, cachedGlob, globCovers, globMatches, globProblem, matchesGlob, MAX_GLOB_LENGTH, MAX_GLOB_WILDCARDS, type Glob } from "./glob.js";
export { formatLabelSelector, parseLabelSelector, selectorMatches, type LabelRequirement, type LabelSelector } from "./labels.js";
export { parseResourceString, resourceString, resourceStrings, STATEMENT_CLASSES } from "./resources.js";
