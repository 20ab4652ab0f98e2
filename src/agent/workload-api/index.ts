export {
  startWorkloadApiServer,
  type WorkloadApiServer,
  type WorkloadApiServerOptions,
  type WorkloadIdentitySnapshot,
  type WorkloadIdentitySource,
  type WorkloadX509Svid,
} from "./server.js";
export { loadWorkloadApi, WORKLOAD_API_METADATA_KEY } from "./proto.js";
