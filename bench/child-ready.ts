import type { ChildProcess } from "node:child_process";

/**
 * Resolves once a started child says it is ready, then stops reading its output, which
 * is drained unread from then on. Matching the whole output so far on every chunk for the
 * rest of a run (server-everything, mcp-proxy and gateways log a line per request) cost the
 * bench's own process CPU that grew with the run, and it hosts proxies being measured.
 *
 * `ready` is a pattern for the output so far (stdout and stderr), or "json" for the first
 * line on stdout that starts with "{", which is parsed and returned.
 */
export function childReady(child: ChildProcess, ready: RegExp | "json", what: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let out = "";
    let err = "";
    const streams = [child.stdout, child.stderr].filter((s) => s !== null);
    const onExit = (code: number | null) => fail(new Error(`${what} exited ${code}: ${err || out}`));
    const timer = setTimeout(() => fail(new Error(`${what} did not start within ${timeoutMs} ms: ${err || out}`)), timeoutMs);
    const stop = () => {
      clearTimeout(timer);
      child.off("exit", onExit);
      child.stdout?.off("data", onOut);
      child.stderr?.off("data", onErr);
      for (const s of streams) s.resume();
    };
    const fail = (error: Error) => {
      stop();
      reject(error);
    };
    const check = () => {
      if (ready === "json") {
        const line = out.slice(0, Math.max(0, out.lastIndexOf("\n"))).split("\n").find((l) => l.startsWith("{"));
        if (line === undefined) return;
        stop();
        try {
          resolve(JSON.parse(line) as Record<string, unknown>);
        } catch (error) {
          reject(new Error(`${what} printed a line that is not JSON: ${line.slice(0, 200)} (${(error as Error).message})`));
        }
        return;
      }
      if (!ready.test(out) && !ready.test(err)) return;
      stop();
      resolve({});
    };
    const onOut = (chunk: Buffer) => {
      out += chunk.toString();
      check();
    };
    const onErr = (chunk: Buffer) => {
      err += chunk.toString();
      if (ready !== "json") check();
    };
    child.stdout?.on("data", onOut);
    child.stderr?.on("data", onErr);
    child.once("exit", onExit);
  });
}
