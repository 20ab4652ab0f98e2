/**
 * Server-Sent Events, both directions: an incremental parser with a size bound (the
 * upstream and `mandate mcp connect` read streams) and the writer the proxy uses.
 */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

export class SseParser {
  private pending = "";
  private data: string[] = [];
  private dataBytes = 0;
  private event = "message";
  private id: string | undefined;

  constructor(
    private readonly onEvent: (event: SseEvent) => void,
    private readonly maxEventBytes: number,
  ) {}

  push(chunk: string): void {
    this.pending += chunk;
    let index: number;
    while ((index = this.pending.search(/\r\n|\r|\n/)) !== -1) {
      const line = this.pending.slice(0, index);
      const newlineLength = this.pending.startsWith("\r\n", index) ? 2 : 1;
      this.pending = this.pending.slice(index + newlineLength);
      this.line(line);
    }
    if (this.pending.length > this.maxEventBytes) throw new Error(`an SSE line is longer than ${this.maxEventBytes} bytes`);
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data.length > 0) this.onEvent({ event: this.event, data: this.data.join("\n"), ...(this.id !== undefined ? { id: this.id } : {}) });
      this.data = [];
      this.dataBytes = 0;
      this.event = "message";
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") {
      this.dataBytes += value.length;
      if (this.dataBytes > this.maxEventBytes) throw new Error(`an SSE event is larger than ${this.maxEventBytes} bytes`);
      this.data.push(value);
    } else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
  }
}

/** One SSE event carrying a JSON-RPC message. */
export function sseMessage(message: unknown): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}
