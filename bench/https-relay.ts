import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
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
 */
export async function startHttpsRelay(upstream: string, clientCa: string): Promise<{ url: string; ca: string; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "mandate-bench-relay-"));
  const keyPath = join(dir, "key.pem");
  const certPath = join(dir, "cert.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", keyPath, "-out", certPath, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"], { stdio: "ignore" });
  const ca = readFileSync(certPath, "utf8");
  const key = readFileSync(keyPath, "utf8");
  rmSync(dir, { recursive: true, force: true });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const target = new URL(upstream);
  const server = https.createServer({ cert: ca, key, ca: clientCa, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const headers = { ...req.headers };
      delete headers.host;
      const forwarded = http.request({ hostname: target.hostname, port: target.port, path: target.pathname, method: req.method, headers, agent }, (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      });
      forwarded.on("error", () => res.destroy());
      forwarded.end(Buffer.concat(chunks));
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
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
