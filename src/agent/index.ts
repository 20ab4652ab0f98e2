export { AGENT_VERSION, agentClient, joinWithToken, obtainSvid, renewSvid, runDaemon, type DaemonOptions, type JoinMethod } from "./daemon.js";
export { CREDENTIAL_FILES, readCredentials, writeCredentials, type AgentCredentials, type AgentState } from "./credential-dir.js";
export { buildCsrDer, generateKeyAndCsr } from "./csr.js";
export { PROOF_RENEWAL_PATH, SvidRenewer } from "./renewal.js";
export { CredentialDirSource } from "./credential-source.js";
export { startDaemonWorkloadApi, type DaemonWorkloadApi } from "./workload-endpoint.js";
