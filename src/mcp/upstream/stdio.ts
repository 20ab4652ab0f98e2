import { type ChildProcess, spawn } from "node:child_process";
import { type JsonRpcMessage, type JsonRpcNotification, type JsonRpcRequest, type JsonRpcResponse, RpcCode, RpcError, parseMessage } from "../jsonrpc.js";
import { RpcPeer } from "./rpc-peer.js";
import type { InboundMessage, RequestHooks, Upstream } from "./types.js";

/** Environment a spawned server inherits: enough to find its runtime, nothing of the control plane's own. */
const INHERITED_ENV = ["PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ", "SYSTEMROOT", "NODE_PATH"];
const MAX_PENDING_WRITE_BYTES = 16 * 1024 * 1024;
const STDERR_TAIL = 4096;

export interface StdioOptions {
  command: string[];
  env: Record<string, string>;
  maxMessageBytes: number;
  cwd?: string | undefined;
}

/** An MCP server the proxy spawns: newline-delimited JSON-RPC on stdin/stdout. */
export class StdioUpstream implements Upstream {
  private readonly child: ChildProcess;
  private readonly peer: RpcPeer;
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private stderrTail = "";
  closed = false;
  private markExited!: (reason: string) => void;
  /** resolves once the process is gone, whoever ended it */
  readonly exited = new Promise<string>((resolve) => (this.markExited = resolve));
  onUnsolicited: (message: InboundMessage) => void = () => undefined;
  onClose: (reason: string) => void = () => undefined;

  constructor(private readonly options: StdioOptions) {
    const env: Record<string, string> = {};
    for (const key of INHERITED_ENV) if (process.env[key] !== undefined) env[key] = process.env[key]!;
    Object.assign(env, options.env);
    const [program, ...args] = options.command;
    this.child = spawn(program!, args, { stdio: ["pipe", "pipe", "pipe"], env, cwd: options.cwd, windowsHide: true });
    this.peer = new RpcPeer((message) => this.write(message));
    this.peer.onUnsolicited = (message) => this.onUnsolicited(message);
    this.child.stdout!.on("data", (chunk: Buffer) => this.read(chunk));
    this.child.stderr!.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL);
    });
    this.child.stdin!.on("error", () => undefined);
    this.child.on("error", (error) => this.shutdown(`could not start ${program}: ${error.message}`));
    this.child.on("exit", (code, signal) => this.shutdown(`the MCP server process exited (${signal ?? `code ${code}`})${this.stderrTail ? `: ${this.stderrTail.trim().split("\n").slice(-3).join(" | ")}` : ""}`));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private read(chunk: Buffer): void {
    let start = 0;
    for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, start)) {
      this.buffered.push(chunk.subarray(start, i));
      const line = Buffer.concat(this.buffered);
      this.buffered = [];
      this.bufferedBytes = 0;
      start = i + 1;
      this.dispatch(line);
    }
    if (start < chunk.length) {
      this.buffered.push(chunk.subarray(start));
      this.bufferedBytes += chunk.length - start;
      if (this.bufferedBytes > this.options.maxMessageBytes) {
        void this.close();
        this.shutdown(`the MCP server wrote a message larger than ${this.options.maxMessageBytes} bytes`);
      }
    }
  }

  private dispatch(line: Buffer): void {
    if (line.length === 0 || (line.length === 1 && line[0] === 13)) return;
    try {
      this.peer.receive(parseMessage(line, this.options.maxMessageBytes).message);
    } catch {
      // A server that prints non-protocol output to stdout is broken, not hostile; skip the line.
    }
  }

  private async write(message: JsonRpcMessage): Promise<void> {
    if (this.closed) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the MCP server process is not running");
    const stdin = this.child.stdin!;
    if (stdin.writableLength > MAX_PENDING_WRITE_BYTES) throw new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the MCP server is not reading its input");
    stdin.write(`${JSON.stringify(message)}\n`);
  }

  request(message: JsonRpcRequest, hooks: RequestHooks): Promise<JsonRpcResponse> {
    if (this.closed) return Promise.reject(new RpcError(RpcCode.UPSTREAM_UNAVAILABLE, "the MCP server process is not running"));
    return this.peer.request(message, hooks);
  }

  send(message: JsonRpcNotification | JsonRpcResponse): Promise<void> {
    return this.write(message);
  }

  get inFlight(): number {
    return this.peer.inFlight;
  }

  private shutdown(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.peer.closeAll(reason);
    this.markExited(reason);
    this.onClose(reason);
  }

  async close(): Promise<void> {
    const child = this.child;
    this.shutdown("the session ended");
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.stdin?.end();
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 2000);
    killer.unref();
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once("exit", () => resolve());
    });
    clearTimeout(killer);
  }
}
