import { execFileSync } from "node:child_process";
import { closeSync, fdatasync, fdatasyncSync, mkdtempSync, openSync, readFileSync, rmSync, write, writeSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * The floor for any Node proxy in front of an HTTP MCP server: an HTTPS listener that
 * demands a client certificate (verified against `clientCa`), reads each request's body
 * and sends it upstream over kept-alive connections, and pipes the answer back. No
 * JSON-RPC parsing, no authorization, no audit. Its server certificate is a throwaway
 * self-signed one made with openssl for 127.0.0.1; clients trust it through `ca`.
 *
 * With `durableRecordsIn` (a directory), it first makes one record of each request durable
 * before forwarding it, the least that "no durable audit record, no action" asks of any
 * proxy: the body written into a preallocated file (so fdatasync flushes data only, no size
 * change) and fdatasync'ed, both on the threadpool. Still nothing parsed, nothing chained.
 */
export async function startHttpsRelay(upstream: string, clientCa: string, options: { durableRecordsIn?: string } = {}): Promise<{ url: string; ca: string; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "mandate-bench-relay-"));
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyPath, "-out", certPath, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  const ca = readFileSync(certPath, "utf8");
  const key = readFileSync(keyPath, "utf8");
  rmSync(dir, { recursive: true, force: true });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const journal = options.durableRecordsIn ? openPreallocatedJournal(options.durableRecordsIn) : undefined;
  const target = new URL(upstream);
  const server = https.createServer({ cert: ca, key, ca: clientCa, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const forward = () => {
        const headers = { ...req.headers };
        delete headers.host;
        const forwarded = http.request({ hostname: target.hostname, port: target.port, path: target.pathname, method: req.method, headers, agent }, (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        });
        forwarded.on("error", () => res.destroy());
        forwarded.end(body);
      };
      if (!journal) return forward();
      // Nothing goes upstream until the record is on disk; a failed write or sync refuses the request.
      journal.record(body, (error) => (error ? res.destroy() : forward()));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `https://127.0.0.1:${port}/mcp`,
    ca,
    close: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        journal?.close();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const JOURNAL_BYTES = 8 * 1024 * 1024;
/** A record is a request's first 4 KiB: enough to stand for an audit intent of any size here. */
const RECORD_BYTES = 4096;

/**
 * Records written one after another into a file filled and synced once up front (wrapping
 * at its end), so fdatasync has only data to flush. Group commit: records that arrive
 * while a write and sync are in flight share the next one.
 */
function openPreallocatedJournal(dir: string) {
  const fd = openSync(join(dir, "relay-journal"), "w+");
  const zeros = Buffer.alloc(1024 * 1024);
  for (let at = 0; at < JOURNAL_BYTES; at += zeros.length) writeSync(fd, zeros, 0, zeros.length, at);
  fdatasyncSync(fd);
  let offset = 0;
  let syncing = false;
  let waiting: Array<{ body: Buffer; done: (error: Error | null) => void }> = [];
  const flush = () => {
    const batch = waiting;
    waiting = [];
    syncing = true;
    const bytes = Buffer.concat(batch.map((r) => r.body.subarray(0, RECORD_BYTES)));
    if (offset + bytes.length > JOURNAL_BYTES) offset = 0;
    const at = offset;
    offset += bytes.length;
    write(fd, bytes, 0, bytes.length, at, (error) => {
      const finish = (failure: Error | null) => {
        syncing = false;
        for (const r of batch) r.done(failure);
        if (waiting.length) flush();
      };
      if (error) return finish(error);
      fdatasync(fd, finish);
    });
  };
  return {
    record(body: Buffer, done: (error: Error | null) => void): void {
      waiting.push({ body, done });
      if (!syncing) flush();
    },
    close: () => closeSync(fd),
  };
}
