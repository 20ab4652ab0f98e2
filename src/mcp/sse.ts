/**
 * Server-Sent Events, both directions: an incremental parser with a size bound (the
 * upstream and `mandate mcp connect` read streams) and the writer the proxy uses.
 */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

const LF = 10;

/**
 * Lines end in CRLF, LF or CR; a CRLF split across two chunks is still one line end.
 * Lines are found with indexOf and the unconsumed rest is kept once per chunk, since
 * this runs for every message an HTTP upstream sends.
 */
export class SseParser {
  private pending = "";
  /** the previous chunk ended in CR: an LF starting the next one belongs to it */
  private skipLf = false;
  private data: string | undefined;
  private dataBytes = 0;
  private event = "message";
  private id: string | undefined;

  constructor(
    private readonly onEvent: (event: SseEvent) => void,
    private readonly maxEventBytes: number,
  ) {}

  push(chunk: string): void {
    const text = this.pending === "" ? chunk : this.pending + chunk;
    let start = 0;
    if (this.skipLf) {
      this.skipLf = false;
      if (text.charCodeAt(0) === LF) start = 1;
    }
    // A CR is rare (LF is what servers send); look for one only while the text has one.
    let cr = text.indexOf("\r", start);
    let lf = text.indexOf("\n", start);
    while (lf !== -1 || cr !== -1) {
      let end: number;
      let next: number;
      if (cr === -1 || (lf !== -1 && lf < cr)) {
        end = lf;
        next = lf + 1;
      } else {
        end = cr;
        if (cr + 1 === text.length) {
          this.skipLf = true;
          next = cr + 1;
        } else next = text.charCodeAt(cr + 1) === LF ? cr + 2 : cr + 1;
      }
      this.line(text.slice(start, end));
      start = next;
      if (lf !== -1 && lf < start) lf = text.indexOf("\n", start);
      if (cr !== -1 && cr < start) cr = text.indexOf("\r", start);
    }
    this.pending = start === 0 ? text : text.slice(start);
    if (this.pending.length > this.maxEventBytes) throw new Error(`an SSE line is longer than ${this.maxEventBytes} bytes`);
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data !== undefined) {
        const event: SseEvent = { event: this.event, data: this.data };
        if (this.id !== undefined) event.id = this.id;
        this.onEvent(event);
      }
      this.data = undefined;
      this.dataBytes = 0;
      this.event = "message";
      return;
    }
    const colon = line.indexOf(":");
    if (colon === 0) return;
    const field = colon === -1 ? line : line.slice(0, colon);
    const value = colon === -1 ? "" : line.slice(colon + (line.charCodeAt(colon + 1) === 32 ? 2 : 1));
    if (field === "data") {
      this.dataBytes += value.length;
      if (this.dataBytes > this.maxEventBytes) throw new Error(`an SSE event is larger than ${this.maxEventBytes} bytes`);
      this.data = this.data === undefined ? value : `${this.data}\n${value}`;
    } else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
  }
}

/** One SSE event carrying a JSON-RPC message. */
export function sseMessage(message: unknown): string {
  return sseFrame(JSON.stringify(message));
}

/** One SSE event carrying a message already serialized (JSON text has no raw newlines). */
export function sseFrame(json: string): string {
  return `event: message\ndata: ${json}\n\n`;
}
