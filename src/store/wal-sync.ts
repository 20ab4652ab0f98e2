import { close, fdatasync, open } from "node:fs";

/**
 * fdatasync(2) of a file, on libuv's threadpool so the event loop keeps serving while
 * the disk flushes. The file is opened for each sync (by path), so a WAL that SQLite
 * reset or recreated since the last one is still the file synced: fsync flushes the
 * file's dirty pages whichever descriptor wrote them.
 */
export function syncFileData(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    open(path, "r", (openError, fd) => {
      if (openError) {
        reject(openError);
        return;
      }
      fdatasync(fd, (syncError) => {
        close(fd, () => (syncError ? reject(syncError) : resolve()));
      });
    });
  });
}
