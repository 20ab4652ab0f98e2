import { DenialReporter, UnixWorkloadAttestor } from "./attestation/index.js";
import type { CredentialDirSource } from "./credential-source.js";
import { type WorkloadApiServer, startWorkloadApiServer } from "./workload-api/index.js";

export interface DaemonWorkloadApi {
  server: WorkloadApiServer;
  denials: DenialReporter;
  close(): Promise<void>;
}

/**
 * The Workload API as `mandate daemon --socket` hosts it: unix attestation against the
 * agent's selectors, and every refused process logged here and reported to the control plane.
 */
export async function startDaemonWorkloadApi(options: { socketPath: string; source: CredentialDirSource; log: (message: string) => void; socketMode?: number }): Promise<DaemonWorkloadApi> {
  const denials = new DenialReporter({ send: (reports) => options.source.reportDenials(reports), log: options.log });
  const attestor = new UnixWorkloadAttestor();
  const server = await startWorkloadApiServer({
    socketPath: options.socketPath,
    source: options.source,
    attestor,
    onDenied: (denial) => denials.record(denial),
    ...(options.socketMode === undefined ? {} : { socketMode: options.socketMode }),
  });
  return {
    server,
    denials,
    async close() {
      await server.close();
      await denials.flush().catch(() => undefined);
      denials.stop();
      options.source.close();
    },
  };
}
