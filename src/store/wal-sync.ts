import { close, fdatasync, open } from "node:fs";

/**
 * fdatasync(2) of one file, on libuv's threadpool so the event loop keeps serving while
 * the disk flushes. The descriptor is opened at the first sync and kept: one threadpool
 * job per sync, not three. For SQLite's `-wal` file that is safe because SQLite keeps
 * the file while a connection is open and a WAL reset rewrites the same file; and fsync
 * flushes a file's dirty pages whichever descriptor wrote them.
 */
export class FileDataSync {
  private descriptor: Promise<number> | undefined;

  constructor(readonly path: string) {}

  sync(): Promise<void> {
    let descriptor = this.descriptor;
    if (!descriptor) {
      const opening = new Promise<number>((resolve, reject) => open(this.path, "r", (error, fd) => (error ? reject(error) : resolve(fd))));
      // A failed open is retried next time (the file may not exist before the first commit).
      opening.catch(() => {
        if (this.descriptor === opening) this.descriptor = undefined;
      });
      this.descriptor = descriptor = opening;
    }
    return descriptor.then((fd) => new Promise<void>((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve()))));
  }

  close(): void {
    const descriptor = this.descriptor;
    this.descriptor = undefined;
    descriptor?.then(
      (fd) => close(fd, () => undefined),
      () => undefined,
    );
  }
}
