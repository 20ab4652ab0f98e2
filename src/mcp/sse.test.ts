import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type SseEvent, SseParser, sseMessage } from "./sse.js";

/** The straightforward parser the indexOf one replaced: the reference for what events a stream holds. */
class ReferenceSseParser {
  private pending = "";
  private data: string[] = [];
  private event = "message";
  private id: string | undefined;

  constructor(private readonly onEvent: (event: SseEvent) => void) {}

  push(chunk: string): void {
    this.pending += chunk;
    let index: number;
    while ((index = this.pending.search(/\r\n|\r|\n/)) !== -1) {
      const line = this.pending.slice(0, index);
      const newlineLength = this.pending.startsWith("\r\n", index) ? 2 : 1;
      this.pending = this.pending.slice(index + newlineLength);
      this.line(line);
    }
  }

  private line(line: string): void {
    if (line === "") {
      if (this.data.length > 0) this.onEvent({ event: this.event, data: this.data.join("\n"), ...(this.id !== undefined ? { id: this.id } : {}) });
      this.data = [];
      this.event = "message";
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    else if (field === "id") this.id = value;
  }
}

function eventsOf(chunks: string[], maxBytes = 1 << 20): SseEvent[] {
  const events: SseEvent[] = [];
  const parser = new SseParser((e) => events.push(e), maxBytes);
  for (const chunk of chunks) parser.push(chunk);
  return events;
}

/** Splits `text` at the given cut points (any positions, CRLF pairs included). */
function chunked(text: string, cuts: number[]): string[] {
  const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const chunks: string[] = [];
  let from = 0;
  for (const p of points) {
    chunks.push(text.slice(from, p));
    from = p;
  }
  chunks.push(text.slice(from));
  return chunks;
}

const newline = fc.constantFrom("\n", "\r\n", "\r");
const fieldLine = fc.oneof(
  fc.tuple(fc.constantFrom("data", "event", "id", "retry", "other", "data ", ""), fc.constantFrom(":", ": ", ":  ", ""), fc.string({ unit: fc.constantFrom("a", "b", " ", ":", "{", "é", "\u2028") })).map(([f, sep, v]) => `${f}${sep}${v}`),
  fc.string({ unit: fc.constantFrom("a", ":", " ") }).map((c) => `:${c}`),
  fc.constant(""),
);
const stream = fc.array(fc.tuple(fieldLine, newline), { maxLength: 40 }).map((lines) => lines.map(([l, n]) => l + n).join(""));

describe("SseParser", () => {
  it("yields the reference parser's events for any stream, however it is cut into chunks", () => {
    fc.assert(
      fc.property(stream, fc.array(fc.nat(), { maxLength: 12 }), (text, cuts) => {
        const expected: SseEvent[] = [];
        const reference = new ReferenceSseParser((e) => expected.push(e));
        reference.push(text);
        expect(eventsOf(chunked(text, cuts))).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it("treats a CRLF split across chunks as one line end", () => {
    expect(eventsOf(["data: a\r", "\n\r", "\ndata: b\r\n\r\n"])).toEqual([
      { event: "message", data: "a" },
      { event: "message", data: "b" },
    ]);
  });

  it("reads what sseMessage writes", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const events = eventsOf([sseMessage(value)]);
        expect(events).toHaveLength(1);
        expect(JSON.parse(events[0]!.data)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
  });

  it("refuses an event or an unfinished line larger than its bound", () => {
    expect(() => eventsOf(["data: 12345\ndata: 67890\n"], 8)).toThrow(/larger than 8 bytes/);
    expect(() => eventsOf(["data: 1234", "5678"], 8)).toThrow(/longer than 8 bytes/);
    expect(eventsOf(["data: 1234\n\n"], 8)).toEqual([{ event: "message", data: "1234" }]);
  });
});
