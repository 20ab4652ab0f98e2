import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { SseSplitter } from "./sse.js";

const eventArb = fc.record({
  event: fc.option(fc.stringMatching(/^[a-z._]{1,20}$/), { nil: undefined }),
  data: fc.array(fc.string({ unit: "grapheme", maxLength: 40 }).map((s) => s.replace(/[\r\n]/g, " ")), { minLength: 1, maxLength: 3 }),
  eol: fc.constantFrom("\n", "\r\n"),
});

function render(e: { event: string | undefined; data: string[]; eol: string }): string {
  return `${e.event ? `event: ${e.event}${e.eol}` : ""}${e.data.map((d) => `data: ${d}${e.eol}`).join("")}${e.eol}`;
}

describe("SseSplitter", () => {
  it("yields the same events, with their exact bytes, however the stream is cut", () => {
    fc.assert(
      fc.property(fc.array(eventArb, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 12 }), (events, cuts) => {
        const bytes = Buffer.from(events.map(render).join(""));
        const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
        const splitter = new SseSplitter();
        const out = [];
        let last = 0;
        for (const p of [...points, bytes.length]) {
          out.push(...splitter.push(bytes.subarray(last, p)));
          last = p;
        }
        expect(Buffer.concat(out.map((e) => e.raw)).equals(bytes)).toBe(true);
        expect(out.map((e) => e.data)).toEqual(events.map((e) => e.data.join("\n")));
        expect(out.map((e) => e.event)).toEqual(events.map((e) => e.event));
        expect(splitter.buffered).toBe(0);
      }),
    );
  });

  it("keeps an unfinished event until its blank line arrives, and hands it back as the rest", () => {
    const splitter = new SseSplitter();
    expect(splitter.push(Buffer.from('data: {"a":1}\n'))).toEqual([]);
    expect(splitter.rest().toString()).toBe('data: {"a":1}\n');
    const [event] = splitter.push(Buffer.from("\n"));
    expect(event!.data).toBe('{"a":1}');
  });
});
