import { open, readFile, unlink } from "node:fs/promises";
import { join } from "node:path";
import { MandateError } from "../errors/index.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * One control plane per data directory: two processes on one SQLite file (or writing
 * one admin identity) would corrupt each other's view. A pid file claims the directory;
 * a file left by a process that no longer runs is taken over.
 */
export async function claimDataDir(dataDir: string): Promise<() => Promise<void>> {
  const path = join(dataDir, "mandate.pid");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, "wx", 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return async () => {
        await unlink(path).catch(() => undefined);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const pid = Number((await readFile(path, "utf8").catch(() => "")).trim());
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
        throw new MandateError("ALREADY_EXISTS", `data directory ${dataDir} is in use by the control plane with pid ${pid}; stop it or use another --data-dir`);
      }
      await unlink(path).catch(() => undefined);
    }
  }
  throw new MandateError("STORE_UNAVAILABLE", `cannot claim data directory ${dataDir}`);
}
