import { isIP } from "node:net";
import { MandateError } from "../errors/index.js";

export interface HostPort {
  host: string;
  port: number;
}

/** Parses `host:port`, `:port`, `[v6]:port` or `host` (with a default port). */
export function parseHostPort(value: string, defaultPort: number, what = "address"): HostPort {
  const input = value.trim();
  let host = input;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(input);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
  } else if (input.includes(":") && isIP(input) !== 6) {
    const index = input.lastIndexOf(":");
    host = input.slice(0, index);
    portText = input.slice(index + 1);
  }
  const port = portText === undefined || portText === "" ? defaultPort : Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new MandateError("INVALID_ARGUMENT", `invalid port in ${what} ${JSON.stringify(value)}`);
  if (host !== "" && !/^[a-zA-Z0-9.:_-]+$/.test(host)) throw new MandateError("INVALID_ARGUMENT", `invalid host in ${what} ${JSON.stringify(value)}`);
  return { host, port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
