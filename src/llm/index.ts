export { LlmService, type LlmServiceOptions } from "./service.js";
export { registerLlmRoutes } from "./routes.js";
export { LlmConfig, loadLlmConfigFile, parseLlmConfig, ProviderConfig, ModelConfig, type LimitConfig, type BudgetConfig } from "./config.js";
export type { UsageRow } from "./recorder.js";
