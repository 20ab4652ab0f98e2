import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { MandateError } from "../../errors/index.js";

/** The name that stock SPIFFE clients call: the standard's proto declares no package. */
export const WORKLOAD_API_SERVICE_NAME = "SpiffeWorkloadAPI";

/** The header every Workload API request must carry (SPIFFE Workload API §5.1.1). */
export const WORKLOAD_API_METADATA_KEY = "workload.spiffe.io";

// snake_case field names so messages read exactly as the contract spells them; byte fields
// stay Buffers; oneofs expose which member is set (needed to decode google.protobuf.Struct).
export const WORKLOAD_PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/**
 * The contract lives at <repo>/proto/workload.proto. This module runs both from the source
 * tree (src/agent/workload-api) and from the build output (dist/src/agent/workload-api), so
 * the file is looked for in each ancestor directory rather than at a fixed depth.
 */
export function findWorkloadProto(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "proto", "workload.proto");
    if (existsSync(candidate)) return candidate;
    const parent = resolve(dir, "..");
    if (parent === dir) break;
    dir = parent;
  }
  throw new MandateError("CONFIG_INVALID", "proto/workload.proto was not found next to the installed package");
}

let cached: { path: string; service: grpc.ServiceDefinition; client: grpc.ServiceClientConstructor } | undefined;

/** Loads the Workload API contract once; both the server and clients build from it. */
export function loadWorkloadApi(protoPath: string = findWorkloadProto()): {
  service: grpc.ServiceDefinition;
  client: grpc.ServiceClientConstructor;
} {
  if (cached?.path === protoPath) return cached;
  const definition = protoLoader.loadSync(protoPath, WORKLOAD_PROTO_LOADER_OPTIONS);
  const loaded = grpc.loadPackageDefinition(definition);
  const client = loaded[WORKLOAD_API_SERVICE_NAME] as grpc.ServiceClientConstructor | undefined;
  if (typeof client !== "function") throw new MandateError("CONFIG_INVALID", `${protoPath} does not define service ${WORKLOAD_API_SERVICE_NAME}`);
  cached = { path: protoPath, service: client.service, client };
  return cached;
}
