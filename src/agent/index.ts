export { AGENT_VERSION, agentClient, joinWithToken, obtainSvid, renewSvid, runDaemon, type DaemonOptions, type JoinMethod } from "./daemon.js";
export { CREDENTIAL_FILES, readCredentials, writeCredentials, type AgentCredentials, type AgentState } from "./credential-dir.js";
export { generateKeyAndCsr } from "./csr.js";
export { CredentialDirSource } from "./credential-source.js";
export { startDaemonWorkloadApi, type DaemonWorkloadApi } from "./workload-endpoint.js";
