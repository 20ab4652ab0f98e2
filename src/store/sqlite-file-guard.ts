import { stat } from "node:fs/promises";
import { MandateError } from "../errors/index.js";

/**
 * SQLite keeps writing through its open descriptor after the file is unlinked or
 * chmod'ed read-only, so those failures would otherwise be silent: issuance would
 * "succeed" into a file nobody will ever read again. A periodic async stat (never
 * on the request path) notices and makes every later write fail closed.
 */
export class SqliteFileGuard {
  private problem: MandateError | undefined;
  private timer: NodeJS.Timeout | undefined;
  private identity: { dev: number; ino: number } | undefined;

  constructor(
    private readonly path: string,
    private readonly intervalMs = 250,
  ) {}

  async start(): Promise<void> {
    const info = await stat(this.path);
    this.identity = { dev: info.dev, ino: info.ino };
    this.timer = setInterval(() => void this.check(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Throws the detected problem, if any. Cheap: reads a field. */
  assertHealthy(): void {
    if (this.problem) throw this.problem;
  }

  get healthy(): boolean {
    return this.problem === undefined;
  }

  async check(): Promise<void> {
    try {
      const info = await stat(this.path);
      if (!this.identity || info.ino !== this.identity.ino || info.dev !== this.identity.dev) {
        this.problem = new MandateError(
          "STORE_UNAVAILABLE",
          `database file ${this.path} was replaced while running; refusing to write. Restart Mandate to reopen it.`,
        );
      } else if ((info.mode & 0o222) === 0) {
        this.problem = new MandateError(
          "STORE_READ_ONLY",
          `database file ${this.path} is read-only; refusing to write. Restore write permission (chmod u+w) to resume.`,
        );
      } else if (this.problem?.code === "STORE_READ_ONLY") {
        this.problem = undefined;
      }
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      this.problem = new MandateError(
        "STORE_UNAVAILABLE",
        code === "ENOENT"
          ? `database file ${this.path} was deleted while running; refusing to write. Restore it, or restart Mandate to start empty.`
          : `database file ${this.path} cannot be checked (${code ?? String(error)}); refusing to write.`,
      );
    }
  }
}
