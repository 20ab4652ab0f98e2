import type { GuardAction } from "../config.js";
import type { EventReading } from "../wire/index.js";
import { type Finding, mergeFindings } from "./finding.js";
import type { Detector, Verdict } from "./index.js";

interface Held {
  raw: Buffer;
  reading: EventReading;
  /** where this event's text starts in the held text */
  offset: number;
  length: number;
}

export interface StreamDetector {
  detector: Detector;
  action: GuardAction;
  detect: (text: string) => Finding[];
}

/** Held text beyond this is released even mid-word (the bound on what a stream is delayed by). */
const MAX_HELD_CHARS = 16 * 1024;

/**
 * Output redaction and blocking on a stream without buffering the answer: an event is
 * held only while its text ends inside a word (credentials and identifiers contain no
 * spaces), and released as soon as a space or line break completes it, after the held
 * text has been screened. A match that runs on to the end of what has arrived (a
 * private-key block still streaming) keeps its events held until it ends. Redacted
 * events are rewritten; a `block` finding ends the stream before the match is sent.
 * Events that carry no text are held only behind held text, so order is kept.
 */
export class StreamGuard {
  private held: Held[] = [];
  private text = "";
  /** redactions decided for text still held (a match whose start was already released): no new marker */
  private carried: (Finding & { continued: boolean })[] = [];
  private readonly counts = new Map<string, number>();
  blocked: Verdict | undefined;

  constructor(private readonly detectors: StreamDetector[]) {}

  /** Feeds one event; returns the events (possibly rewritten) that may be sent now. */
  push(raw: Buffer, reading: EventReading): Buffer[] {
    if (this.blocked) return [];
    if (reading.text === undefined && this.held.length === 0) return [raw];
    const text = reading.text ?? "";
    this.held.push({ raw, reading, offset: this.text.length, length: text.length });
    this.text += text;
    return this.release(false);
  }

  /** The stream ended: everything still held is screened and released. */
  flush(): Buffer[] {
    if (this.blocked) return [];
    return this.release(true);
  }

  verdicts(): Verdict[] {
    const byDetector = new Map<string, Verdict>();
    for (const [key, count] of this.counts) {
      const [detector, action, kind] = key.split("\u0000") as [Detector, Verdict["action"], string];
      const v = byDetector.get(detector) ?? { detector, direction: "output" as const, action, findings: [] };
      v.findings.push({ kind, role: "assistant", count });
      byDetector.set(detector, v);
    }
    if (this.blocked && !byDetector.has(this.blocked.detector)) byDetector.set(this.blocked.detector, this.blocked);
    return [...byDetector.values()];
  }

  private release(all: boolean): Buffer[] {
    // Up to the last whitespace, words are complete; the rest may still be growing.
    let boundary = this.text.length;
    if (!all) {
      const lastSpace = Math.max(this.text.lastIndexOf(" "), this.text.lastIndexOf("\n"), this.text.lastIndexOf("\t"));
      boundary = this.text.length > MAX_HELD_CHARS ? this.text.length : lastSpace + 1;
    }
    const findings: (Finding & { detector: Detector; action: GuardAction })[] = [];
    for (const d of this.detectors) for (const f of d.detect(this.text)) findings.push({ ...f, detector: d.detector, action: d.action });
    // A match reaching past the boundary is not finished: nothing from its start on may go yet.
    for (const f of findings) if (f.end > boundary && !all && this.text.length <= MAX_HELD_CHARS) boundary = Math.min(boundary, f.start);
    const complete = findings.filter((f) => f.end <= boundary || all);
    const blocking = complete.find((f) => f.action === "block");
    if (blocking) {
      this.count(blocking);
      this.blocked = { detector: blocking.detector, direction: "output", action: "block", findings: [{ kind: blocking.kind, role: "assistant", count: 1 }] };
      this.held = [];
      return [];
    }
    // Merged with what is carried over, so a tail already masked gets no second marker.
    const redactions = mergeFindings([...this.carried, ...complete.filter((f) => f.action === "redact").map((f) => ({ ...f, continued: false }))]);
    for (const f of complete) this.count(f);
    const out: Buffer[] = [];
    let released = 0;
    for (const h of this.held) {
      if (h.offset + h.length > boundary && !all) break;
      // An event with no text behind a held one goes with it.
      out.push(this.rewrite(h, redactions));
      released++;
    }
    if (released === 0) return out;
    const rest = this.held.slice(released);
    const cut = rest.length ? rest[0]!.offset : this.text.length;
    this.text = this.text.slice(cut);
    this.held = rest.map((h) => ({ ...h, offset: h.offset - cut }));
    // A match that began in what was just released continues into what is still held: its tail stays masked.
    this.carried = redactions.filter((f) => f.end > cut).map((f) => ({ kind: f.kind, start: Math.max(0, f.start - cut), end: f.end - cut, continued: f.continued || f.start < cut }));
    return out;
  }

  private count(f: Finding & { detector: Detector; action: GuardAction }): void {
    const key = `${f.detector}\u0000${f.action}\u0000${f.kind}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  private rewrite(h: Held, redactions: (Finding & { continued: boolean })[]): Buffer {
    const start = h.offset;
    const end = h.offset + h.length;
    const overlapping = redactions.filter((f) => f.start < end && start < f.end);
    if (overlapping.length === 0 || !h.reading.withText || h.reading.text === undefined) return h.reading.bytes ?? h.raw;
    let text = "";
    let cursor = start;
    for (const f of overlapping.sort((a, b) => a.start - b.start)) {
      if (f.start > cursor) text += this.text.slice(cursor, f.start);
      // The marker goes where the match starts; the rest of the match is dropped from later events.
      if (f.start >= start && !f.continued) text += `[REDACTED:${f.kind}]`;
      cursor = Math.max(cursor, Math.min(f.end, end));
    }
    text += this.text.slice(cursor, end);
    return h.reading.withText(text);
  }
}
