import { Agent, request as httpsRequest } from "node:https";
import { MandateError } from "../errors/index.js";

export interface ClientCredentials {
  /** PEM trust anchors the server certificate must chain to (the pinned bundle). */
  caPem: string;
  certPem?: string | undefined;
  keyPem?: string | undefined;
}

const MAX_RESPONSE_BYTES = 4 * 1024 * 1024;

/**
 * The one HTTP client every Mandate command uses. The server is always verified
 * against the pinned trust bundle; there is no option to turn that off.
 */
export class MandateClient {
  private readonly agent: Agent;
  readonly baseUrl: URL;

  constructor(
    url: string,
    credentials: ClientCredentials,
    private readonly timeoutMs = 15_000,
  ) {
    this.baseUrl = parseServerUrl(url);
    this.agent = new Agent({
      keepAlive: true,
      ca: credentials.caPem,
      cert: credentials.certPem,
      key: credentials.keyPem,
      rejectUnauthorized: true,
      maxSockets: 64,
    });
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const url = new URL(path, this.baseUrl);
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise<T>((resolvePromise, reject) => {
      const req = httpsRequest(
        url,
        {
          method,
          agent: this.agent,
          headers: payload ? { "content-type": "application/json", "content-length": payload.length } : {},
          timeout: this.timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on("data", (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy(new MandateError("CONNECTION_FAILED", `response from ${url.origin} is larger than ${MAX_RESPONSE_BYTES} bytes`));
              return;
            }
            chunks.push(chunk);
          });
          res.on("end", () => {
            const text = Buffer.concat(chunks).toString("utf8");
            let json: unknown;
            try {
              json = text.length ? JSON.parse(text) : {};
            } catch {
              reject(new MandateError("CONNECTION_FAILED", `${url.origin} answered HTTP ${res.statusCode} with a body that is not JSON`));
              return;
            }
            if ((res.statusCode ?? 500) >= 400) reject(MandateError.fromJson((json as { error?: unknown }).error, res.statusCode));
            else resolvePromise(json as T);
          });
          res.on("error", (error) => reject(connectionError(url, error)));
        },
      );
      req.on("timeout", () => req.destroy(new MandateError("CONNECTION_FAILED", `no answer from ${url.origin} within ${this.timeoutMs / 1000}s`)));
      req.on("error", (error) => reject(connectionError(url, error)));
      req.end(payload);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

export function parseServerUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url.includes("://") ? url : `https://${url}`);
  } catch {
    throw new MandateError("INVALID_ARGUMENT", `invalid --auth-server ${JSON.stringify(url)}: expected https://HOST:PORT`);
  }
  if (parsed.protocol !== "https:") throw new MandateError("INVALID_ARGUMENT", `--auth-server must use https:// (got ${parsed.protocol})`);
  return parsed;
}

function connectionError(url: URL, error: unknown): MandateError {
  if (error instanceof MandateError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? "";
  const message = (error as Error).message;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    return new MandateError("CONNECTION_FAILED", `the server certificate does not name ${url.hostname}; start the control plane with --public-addr ${url.hostname}`);
  }
  if (code.startsWith("ERR_TLS") || /certificate|self.signed|unable to verify/i.test(message)) {
    return new MandateError("CONNECTION_FAILED", `TLS verification of ${url.origin} failed (${code || message}): the server is not the pinned control plane`);
  }
  if (code === "ECONNREFUSED") return new MandateError("CONNECTION_FAILED", `nothing is listening at ${url.origin}; is \`mandate start\` running?`);
  return new MandateError("CONNECTION_FAILED", `cannot reach ${url.origin}: ${message}`, { cause: error });
}
