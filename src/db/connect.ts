import { connect as netConnect, createServer, type Server, type Socket } from "node:net";
import { type TLSSocket, connect as tlsConnect } from "node:tls";
import type { AddressInfo } from "node:net";
import { readCredentials } from "../agent/index.js";
import { MandateError } from "../errors/index.js";
import { errorResponse, readStartupPacket, sslRequest, startupMessage } from "./protocol.js";

export interface DbBridgeOptions {
  /** the agent's credential directory (kept fresh by `mandate daemon`); read at every connection */
  credentialDir: string;
  proxyHost: string;
  proxyPort: number;
  database: string;
  dbUser?: string | undefined;
  delegationToken?: string | undefined;
  /** 0: any free port */
  localPort: number;
}

/**
 * `mandate db connect`: a plaintext PostgreSQL port on 127.0.0.1 for tools that cannot
 * present a client certificate. Each local connection is carried to the proxy over TLS
 * with the agent's current X509-SVID; the startup packet is rewritten to the chosen
 * database and user, so the local tool's own settings cannot point it elsewhere.
 */
export async function startDbBridge(options: DbBridgeOptions): Promise<{ port: number; close(): Promise<void>; server: Server }> {
  const initial = await readCredentials(options.credentialDir);
  if (!initial) throw new MandateError("NOT_FOUND", `no agent credentials in ${options.credentialDir}; join first with \`mandate daemon\``);
  const sockets = new Set<Socket>();
  const server = createServer((local) => {
    sockets.add(local);
    local.once("close", () => sockets.delete(local));
    void bridge(local, options).catch((error: unknown) => {
      if (!local.destroyed) local.end(errorResponse({ severity: "FATAL", code: "08001", message: `mandate db connect: ${(error as Error).message}` }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: options.localPort }, () => resolve());
  });
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function bridge(local: Socket, options: DbBridgeOptions): Promise<void> {
  local.setNoDelay(true);
  let buffer = Buffer.alloc(0);
  // The local side is plaintext: SSL and GSS requests are declined, then the startup packet is read.
  const startup = await new Promise<{ params: Map<string, string>; rest: Buffer }>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      try {
        for (;;) {
          const read = readStartupPacket(buffer);
          if (!read) return;
          buffer = buffer.subarray(read.consumed);
          if (read.packet.kind === "ssl" || read.packet.kind === "gssenc") local.write("N");
          else if (read.packet.kind === "startup") {
            local.removeListener("data", onData);
            resolve({ params: read.packet.params, rest: buffer });
            return;
          } else {
            local.removeListener("data", onData);
            reject(new Error("cancel requests are not carried by the local bridge"));
            return;
          }
        }
      } catch (error) {
        local.removeListener("data", onData);
        reject(error);
      }
    };
    local.on("data", onData);
    local.once("error", reject);
  });
  const credentials = await readCredentials(options.credentialDir);
  if (!credentials) throw new Error(`no agent credentials in ${options.credentialDir}`);
  const params: Record<string, string> = {};
  for (const [k, v] of startup.params) if (k !== "database" && k !== "user" && k !== "options") params[k] = v;
  params.database = options.database;
  if (options.dbUser) params.user = options.dbUser;
  else if (startup.params.get("user")) params.user = startup.params.get("user")!;
  if (options.delegationToken) params.options = `-c mandate.delegation=${options.delegationToken}`;
  const remote = await openProxy(options, credentials.svidPem, credentials.keyPem, credentials.bundlePem);
  remote.write(startupMessage(params));
  if (startup.rest.length) remote.write(startup.rest);
  local.pipe(remote);
  remote.pipe(local);
  const end = () => {
    local.destroy();
    remote.destroy();
  };
  local.once("close", end);
  remote.once("close", end);
  remote.on("error", end);
  local.on("error", end);
}

function openProxy(options: DbBridgeOptions, cert: string, key: string, ca: string): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    {
      const raw = netConnect({ host: options.proxyHost, port: options.proxyPort });
      raw.setNoDelay(true);
      raw.once("error", (error) => reject(new Error(`cannot reach the database proxy at ${options.proxyHost}:${options.proxyPort}: ${error.message}`)));
      raw.once("connect", () => raw.write(sslRequest()));
      raw.once("data", (answer: Buffer) => {
        if (answer[0] !== 0x53) return reject(new Error("the database proxy refused TLS"));
        // The chain is verified against the trust bundle; the name check is skipped because the
        // server certificate names the control plane's addresses, which the proxy host may not be.
        const tls = tlsConnect({ socket: raw, cert, key, ca, servername: /^[\d.:]+$/.test(options.proxyHost) ? undefined : options.proxyHost, checkServerIdentity: () => undefined, minVersion: "TLSv1.2" });
        tls.once("secureConnect", () => resolve(tls));
        tls.once("error", (error) => reject(new Error(`TLS to the database proxy failed: ${error.message}`)));
      });
    }
  });
}
