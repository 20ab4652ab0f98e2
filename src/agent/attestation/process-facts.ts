import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, readlink, realpath, stat } from "node:fs/promises";
import { MandateError } from "../../errors/index.js";
import { type PeerCredentials, peerCredAddon } from "./peer-credentials.js";

/** What the daemon knows about a calling process. Facts that could not be read are undefined. */
export interface ProcessFacts {
  pid: number;
  uid: number;
  gid: number;
  ppid: number | undefined;
  /** The executable the process runs (/proc/<pid>/exe), undefined if unreadable or deleted. */
  path: string | undefined;
  /** sha256 of that executable, computed only when a selector asks for it. */
  sha256(): Promise<string | undefined>;
}

interface StatLine {
  ppid: number;
  /** Clock ticks after boot. */
  startTicks: number;
}

/** /proc/<pid>/stat: the command name may contain spaces and parentheses, so fields are counted after the last ')'. */
export function parseProcStat(text: string): StatLine {
  const close = text.lastIndexOf(")");
  if (close < 0) throw new MandateError("INTERNAL", "unreadable /proc/<pid>/stat");
  const fields = text.slice(close + 2).trim().split(" ");
  // After the name: state(3) ppid(4) … starttime(22); fields[0] is field 3.
  const ppid = Number(fields[1]);
  const startTicks = Number(fields[19]);
  if (!Number.isSafeInteger(ppid) || !Number.isSafeInteger(startTicks)) throw new MandateError("INTERNAL", "unreadable /proc/<pid>/stat");
  return { ppid, startTicks };
}

async function readStat(pid: number): Promise<StatLine | undefined> {
  try {
    return parseProcStat(await readFile(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return undefined;
  }
}

let bootTimeMs: Promise<number> | undefined;
function bootTime(): Promise<number> {
  bootTimeMs ??= readFile("/proc/stat", "utf8").then((text) => {
    const line = text.split("\n").find((l) => l.startsWith("btime "));
    if (!line) throw new MandateError("INTERNAL", "no btime in /proc/stat");
    return Number(line.slice(6)) * 1000;
  });
  return bootTimeMs;
}

/** Hashes are cached per file identity, so a 100 MB interpreter is read once, not per call. */
const hashCache = new Map<string, Promise<string | undefined>>();
const HASH_CACHE_LIMIT = 256;

async function hashExecutable(pid: number): Promise<string | undefined> {
  // Through /proc/<pid>/exe: the very inode the process runs, even if the path was replaced since.
  const exe = `/proc/${pid}/exe`;
  let info;
  try {
    info = await stat(exe, { bigint: true });
  } catch {
    return undefined;
  }
  const key = `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
  let hash = hashCache.get(key);
  if (!hash) {
    hash = new Promise<string | undefined>((resolve) => {
      const digest = createHash("sha256");
      createReadStream(exe)
        .on("data", (chunk) => digest.update(chunk))
        .on("end", () => resolve(digest.digest("hex")))
        .on("error", () => resolve(undefined));
    });
    if (hashCache.size >= HASH_CACHE_LIMIT) hashCache.delete(hashCache.keys().next().value!);
    hashCache.set(key, hash);
    // An unreadable file is retried next time rather than remembered as such.
    void hash.then((h) => h === undefined && hashCache.delete(key));
  }
  return hash;
}

/**
 * Reads the calling process's facts from /proc and proves they belong to the process that
 * connected, not to a later process that got the same pid: the process must have started
 * no later than the connection, its start time must be the same before and after the reads,
 * and, where the kernel gave a pidfd, that exact process must still be alive afterwards.
 * Any doubt throws, and the caller is refused.
 */
export async function inspectProcess(peer: PeerCredentials, connectedAtMs: number): Promise<ProcessFacts> {
  const before = await readStat(peer.pid);
  if (!before) throw new MandateError("PERMISSION_DENIED", `the calling process ${peer.pid} is gone`);
  const ticks = peerCredAddon().clockTicks();
  const startedAtMs = (await bootTime()) + (before.startTicks * 1000) / ticks;
  // btime has one-second resolution: allow that much slack.
  if (startedAtMs > connectedAtMs + 1000) throw new MandateError("PERMISSION_DENIED", `pid ${peer.pid} was reused by a process started after the connection`);
  let path: string | undefined;
  try {
    const target = await readlink(`/proc/${peer.pid}/exe`);
    path = target.endsWith(" (deleted)") ? undefined : target;
  } catch {
    path = undefined;
  }
  const after = await readStat(peer.pid);
  if (!after || after.startTicks !== before.startTicks) throw new MandateError("PERMISSION_DENIED", `the calling process ${peer.pid} exited while it was being attested`);
  if (peer.pidfd >= 0 && !peerCredAddon().pidfdAlive(peer.pidfd)) throw new MandateError("PERMISSION_DENIED", `the calling process ${peer.pid} exited while it was being attested`);
  let sha: Promise<string | undefined> | undefined;
  return {
    pid: peer.pid,
    uid: peer.uid,
    gid: peer.gid,
    ppid: before.ppid,
    path,
    sha256: () => {
      sha ??= (async () => {
        const hash = await hashExecutable(peer.pid);
        // The hash was read through the pid too: check again that it is still the same process.
        const again = await readStat(peer.pid);
        if (!again || again.startTicks !== before.startTicks) return undefined;
        if (peer.pidfd >= 0 && !peerCredAddon().pidfdAlive(peer.pidfd)) return undefined;
        return hash;
      })();
      return sha;
    },
  };
}

/** A selector path may name a symlink (/usr/bin/python3 → python3.11); /proc shows the target. */
export async function resolveSelectorPath(path: string): Promise<string | undefined> {
  try {
    return await realpath(path);
  } catch {
    return undefined;
  }
}
