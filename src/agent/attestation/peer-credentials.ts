import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Socket } from "node:net";
import { MandateError } from "../../errors/index.js";

/** What the kernel recorded about the process that connected to the socket. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
  /** A pidfd pinning that exact process (Linux 6.5+), or -1. Owned by the caller: close it. */
  pidfd: number;
}

interface PeerCredAddon {
  peerCredentials(fd: number): PeerCredentials;
  pidfdAlive(pidfd: number): boolean;
  closeFd(fd: number): void;
  clockTicks(): number;
}

const ADDON = join("build", "Release", "mandate_peercred.node");
let addon: PeerCredAddon | undefined;

/**
 * Loads native/peercred.c as built by `npm install`. The module runs from src/ and from
 * dist/src/, so the build directory is looked for in each ancestor of this file.
 */
export function peerCredAddon(): PeerCredAddon {
  if (addon) return addon;
  if (process.platform !== "linux") throw new MandateError("CONFIG_INVALID", "workload attestation reads SO_PEERCRED and /proc, which only Linux has; the Workload API cannot run on this platform");
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, ADDON);
    if (existsSync(candidate)) {
      try {
        addon = createRequire(import.meta.url)(candidate) as PeerCredAddon;
        return addon;
      } catch (error) {
        throw new MandateError("CONFIG_INVALID", `cannot load ${candidate} (${(error as Error).message}); rebuild it with \`npm rebuild mandate\``, { cause: error });
      }
    }
    const parent = resolve(dir, "..");
    if (parent === dir) break;
    dir = parent;
  }
  throw new MandateError("CONFIG_INVALID", `the peer-credential addon (${ADDON}) is not built, so callers of the Workload API cannot be attested; run \`npm rebuild mandate\` (needs python3, make and a C compiler)`);
}

/**
 * Reads SO_PEERCRED from a connected unix socket. `_handle.fd` is Node's own (undocumented
 * but long-stable) descriptor accessor; anything unexpected throws, so the caller refuses
 * the connection rather than serving an unknown peer.
 */
export function readPeerCredentials(socket: Socket): PeerCredentials {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) throw new MandateError("INTERNAL", "the connection has no file descriptor to read peer credentials from");
  return peerCredAddon().peerCredentials(fd);
}
