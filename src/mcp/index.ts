export { McpCatalog, splitCommand, SERVER_NAME, type McpServerEntry, type NewMcpServer, type UpstreamSpec, type DriftMode, type SecretAction, type McpTransport } from "./catalog.js";
export { DefinitionPins, definitionHash, type DefinitionRecord, type DefinitionKind, type DefinitionStatus } from "./definitions.js";
export { McpProxy, TOOL_NAME, type McpProxyOptions } from "./proxy.js";
export { registerMcpRoutes, type McpRouteDeps } from "./routes.js";
export { DEFAULT_LIMITS, type CallerCredentials, type ClientReply, type ProxyLimits } from "./types.js";
export { parseMessage, classifyMessage, RpcError, RpcCode, type JsonRpcMessage } from "./jsonrpc.js";
export { scanText, scanDefinition, scanResult, type Finding } from "./poison.js";
export { HttpUpstream } from "./upstream/http.js";
