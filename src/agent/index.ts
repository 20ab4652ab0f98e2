export { AGENT_VERSION, agentClient, joinWithToken, obtainSvid, renewSvid, runDaemon, type DaemonOptions } from "./daemon.js";
export { CREDENTIAL_FILES, readCredentials, writeCredentials, type AgentCredentials, type AgentState } from "./credential-dir.js";
export { generateKeyAndCsr } from "./csr.js";
export { CredentialDirSource } from "./credential-source.js";
export { startDaemonWorkloadApi, type DaemonWorkloadApi } from "./workload-endpoint.js";
