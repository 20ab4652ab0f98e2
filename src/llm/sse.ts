/**
 * Splits a Server-Sent Events byte stream into events without copying more than it
 * must: each event keeps its exact bytes (so it can be forwarded unchanged or dropped
 * whole) alongside its parsed `event` and `data` fields. Separators are any of the
 * three line endings the SSE specification allows.
 */
export interface SseEvent {
  raw: Buffer;
  event: string | undefined;
  data: string;
}

const MAX_PENDING = 16 * 1024 * 1024;

export class SseSplitter {
  private pending: Buffer = Buffer.alloc(0);
  /** bytes already known to hold no event end, so a long event is not rescanned from its start */
  private scanned = 0;

  /** Feeds bytes; returns the events completed by them. */
  push(chunk: Buffer): SseEvent[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    if (this.pending.length > MAX_PENDING) throw new Error(`an SSE event is longer than ${MAX_PENDING} bytes`);
    const events: SseEvent[] = [];
    let start = 0;
    let i = Math.max(0, this.scanned - 3);
    const buf = this.pending;
    while (i < buf.length) {
      const end = eventEnd(buf, i);
      if (end < 0) break;
      const raw = buf.subarray(start, end);
      events.push(parseEvent(raw));
      start = end;
      i = end;
    }
    this.pending = start === 0 ? buf : buf.subarray(start);
    this.scanned = this.pending.length;
    return events;
  }

  /** Bytes of an incomplete event still held. */
  get buffered(): number {
    return this.pending.length;
  }

  /** Whatever was left without a terminating blank line (a stream cut short). */
  rest(): Buffer {
    return this.pending;
  }
}

/** Index just past the blank line ending the event that contains `from`, or -1. */
function eventEnd(buf: Buffer, from: number): number {
  for (let i = from; i < buf.length; i++) {
    const c = buf[i];
    if (c !== 0x0a && c !== 0x0d) continue;
    // A line ending followed by another line ending is the blank line.
    const first = c === 0x0d && buf[i + 1] === 0x0a ? i + 2 : i + 1;
    if (first >= buf.length) return -1;
    const d = buf[first];
    if (d === 0x0a) return first + 1;
    if (d === 0x0d) {
      if (first + 1 >= buf.length) return -1;
      return buf[first + 1] === 0x0a ? first + 2 : first + 1;
    }
    i = first - 1;
  }
  return -1;
}

function parseEvent(raw: Buffer): SseEvent {
  let event: string | undefined;
  const data: string[] = [];
  for (const line of raw.toString("utf8").split(/\r\n|\r|\n/)) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return { raw, event, data: data.join("\n") };
}
