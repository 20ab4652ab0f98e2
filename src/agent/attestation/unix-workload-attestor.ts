import type { WorkloadAttestation, WorkloadAttestor, WorkloadCaller, WorkloadX509Svid } from "../workload-api/server.js";
import { inspectProcess } from "./process-facts.js";
import { attestUnixProcess } from "./unix-attestor.js";

/**
 * The daemon's attestor: the caller's kernel credentials and /proc facts against each
 * identity's selectors. An identity registered without selectors is served only to the
 * daemon's own user, which is what the socket's file mode used to guarantee.
 */
export class UnixWorkloadAttestor implements WorkloadAttestor {
  readonly defaultSelectors: readonly string[];

  constructor(options: { defaultSelectors?: readonly string[] } = {}) {
    this.defaultSelectors = options.defaultSelectors ?? [`unix:uid:${process.getuid?.() ?? 0}`];
  }

  async attest(caller: WorkloadCaller, svids: readonly WorkloadX509Svid[]): Promise<WorkloadAttestation> {
    const facts = await inspectProcess(caller, caller.connectedAt);
    const registrations = svids.map((svid) => ({ spiffeId: svid.spiffeId, selectors: svid.selectors?.length ? svid.selectors : this.defaultSelectors }));
    const result = await attestUnixProcess(facts, registrations);
    return {
      allowed: result.matched,
      reasons: result.mismatches,
      facts: { pid: facts.pid, uid: facts.uid, gid: facts.gid, ppid: facts.ppid, path: facts.path ?? null },
    };
  }
}
