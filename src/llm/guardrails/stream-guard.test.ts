import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { detectSecrets } from "./secrets.js";
import { StreamGuard } from "./stream-guard.js";

/** A fake event: its text is carried in the bytes, and withText rebuilds it. */
function event(text: string) {
  const raw = Buffer.from(`data: ${JSON.stringify({ t: text })}\n\n`);
  return { raw, reading: { text, withText: (t: string) => Buffer.from(`data: ${JSON.stringify({ t })}\n\n`) } };
}
const textOf = (b: Buffer) => (JSON.parse(b.toString().slice(6)) as { t: string }).t;
const SECRET = `ghp_${"aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6"}`;

function run(pieces: string[], action: "redact" | "block") {
  const guard = new StreamGuard([{ detector: "secrets", action, detect: detectSecrets }]);
  const out: Buffer[] = [];
  for (const p of pieces) out.push(...guard.push(event(p).raw, event(p).reading));
  out.push(...guard.flush());
  return { text: out.map(textOf).join(""), guard };
}

describe("StreamGuard: output redaction on a stream", () => {
  it("never lets a secret through, however the model splits it across events", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 10 }), (cuts) => {
        const full = `here is the token ${SECRET} for the deploy job`;
        const points = [...new Set(cuts.map((c) => c % full.length))].sort((a, b) => a - b);
        const pieces: string[] = [];
        let last = 0;
        for (const p of [...points, full.length]) {
          if (p > last) pieces.push(full.slice(last, p));
          last = p;
        }
        const { text } = run(pieces, "redact");
        expect(text).toBe("here is the token [REDACTED:github] for the deploy job");
        const blocked = run(pieces, "block");
        expect(blocked.text).not.toContain(SECRET.slice(0, 12));
        expect(blocked.guard.blocked?.detector).toBe("secrets");
      }),
    );
  });

  it("passes clean text through unchanged and holds at most the word in progress", () => {
    const guard = new StreamGuard([{ detector: "secrets", action: "redact", detect: detectSecrets }]);
    expect(guard.push(event("Hello ").raw, event("Hello ").reading).map(textOf)).toEqual(["Hello "]);
    expect(guard.push(event("wor").raw, event("wor").reading)).toEqual([]);
    expect(guard.push(event("ld ").raw, event("ld ").reading).map(textOf)).toEqual(["wor", "ld "]);
    // An event without text is not delayed when nothing is held.
    const raw = Buffer.from("data: [DONE]\n\n");
    expect(guard.push(raw, {})).toEqual([raw]);
  });
});
