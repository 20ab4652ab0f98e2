export { DbService, DEFAULT_DB_LISTEN, DEFAULT_DB_PORT, type DbServiceOptions } from "./service.js";
export { DbRegistry, DbDefinition, SecretRef, parseDatabaseUri, resolveSecret, type DbView } from "./registry.js";
export { ClassificationCache, classifySql, loadParser, redact, UnparseableStatement, type Classification } from "./classify.js";
export { DbAuditJournal } from "./journal.js";
export { registerDbRoutes } from "./routes.js";
export { startDbBridge, type DbBridgeOptions } from "./connect.js";
export { createDbMcpServer, runDbMcpServer, type DbMcpServerOptions, type DbToolsOptions } from "./mcp-server.js";
export { openBuiltinDbServer } from "./mcp-builtin.js";
