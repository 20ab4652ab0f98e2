export { DenialReporter, type DenialReport } from "./denial-reporter.js";
export { peerCredAddon, readPeerCredentials, type PeerCredentials } from "./peer-credentials.js";
export { inspectProcess, parseProcStat, type ProcessFacts } from "./process-facts.js";
export { attestUnixProcess, type AttestationResult, type WorkloadRegistration } from "./unix-attestor.js";
export { UnixWorkloadAttestor } from "./unix-workload-attestor.js";
