/** A detector's hit: what kind of thing, and where in the text (the value itself is never recorded). */
export interface Finding {
  kind: string;
  start: number;
  end: number;
}

/** Longest text a detector scans in one piece; longer texts are scanned in overlapping windows. */
export const SCAN_WINDOW = 64 * 1024;
const OVERLAP = 4 * 1024;

/**
 * Runs a detector over text of any length in bounded windows, so that no pattern ever
 * sees more than SCAN_WINDOW characters (a bound on regex work per call), with an
 * overlap so that a match across a window edge is still found.
 */
export function scanWindows(text: string, detect: (chunk: string) => Finding[]): Finding[] {
  if (text.length <= SCAN_WINDOW) return detect(text);
  const out: Finding[] = [];
  const seen = new Set<string>();
  for (let offset = 0; offset < text.length; offset += SCAN_WINDOW - OVERLAP) {
    for (const f of detect(text.slice(offset, offset + SCAN_WINDOW))) {
      const key = `${f.kind}:${f.start + offset}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ kind: f.kind, start: f.start + offset, end: f.end + offset });
    }
    if (offset + SCAN_WINDOW >= text.length) break;
  }
  return out;
}

/** Replaces every finding's span with a marker naming its kind; overlapping spans merge. */
export function redactFindings(text: string, findings: Finding[]): string {
  if (findings.length === 0) return text;
  const sorted = [...findings].sort((a, b) => a.start - b.start || b.end - a.end);
  let out = "";
  let cursor = 0;
  for (const f of sorted) {
    if (f.end <= cursor) continue;
    const start = Math.max(f.start, cursor);
    out += text.slice(cursor, start) + (start === f.start ? `[REDACTED:${f.kind}]` : "");
    cursor = f.end;
  }
  return out + text.slice(cursor);
}

/** Overlapping findings become one (the first one's kind): two rule sets often match the same credential. */
export function mergeFindings<F extends Finding>(findings: F[]): F[] {
  const sorted = [...findings].sort((a, b) => a.start - b.start || b.end - a.end);
  const out: F[] = [];
  for (const f of sorted) {
    const last = out[out.length - 1];
    if (last && f.start < last.end) last.end = Math.max(last.end, f.end);
    else out.push({ ...f });
  }
  return out;
}
