import { describe, expect, it } from "vitest";
import { CORPUS, type Label } from "../../../test/fixtures/guardrail-corpus.js";
import { detectInjection, detectPii, detectSecrets } from "./index.js";

const DETECTORS: Record<Label, (text: string) => unknown[]> = { secret: detectSecrets, pii: detectPii, injection: detectInjection };

describe("guardrail detectors on a labelled corpus", () => {
  it("has at least 100 labelled examples across secrets, PII, injections and clean text", () => {
    expect(CORPUS.length).toBeGreaterThanOrEqual(100);
    for (const label of ["secret", "pii", "injection"] as const) expect(CORPUS.filter((e) => e.labels.includes(label)).length).toBeGreaterThanOrEqual(20);
    expect(CORPUS.filter((e) => e.labels.length === 0).length).toBeGreaterThanOrEqual(30);
  });

  it("reports precision and recall per detector and meets the floors", () => {
    const lines = ["detector    precision  recall   tp  fp  fn"];
    const misses: string[] = [];
    const scores: Record<string, { precision: number; recall: number }> = {};
    for (const [label, detect] of Object.entries(DETECTORS) as [Label, (t: string) => unknown[]][]) {
      let tp = 0;
      let fp = 0;
      let fn = 0;
      for (const example of CORPUS) {
        const hit = detect(example.text).length > 0;
        const expected = example.labels.includes(label);
        if (hit && expected) tp++;
        else if (hit && !expected) {
          fp++;
          misses.push(`false ${label}: ${example.note}`);
        } else if (!hit && expected) {
          fn++;
          misses.push(`missed ${label}: ${example.note}`);
        }
      }
      const precision = tp / Math.max(1, tp + fp);
      const recall = tp / Math.max(1, tp + fn);
      scores[label] = { precision, recall };
      lines.push(`${label.padEnd(11)} ${precision.toFixed(3).padStart(9)}  ${recall.toFixed(3).padStart(6)}  ${String(tp).padStart(3)} ${String(fp).padStart(3)} ${String(fn).padStart(3)}`);
    }
    console.log(`${lines.join("\n")}\n${misses.length ? `misclassified:\n  ${misses.join("\n  ")}` : "no misclassifications"}`);
    expect(scores.secret!.recall).toBeGreaterThanOrEqual(0.9);
    expect(scores.secret!.precision).toBeGreaterThanOrEqual(0.9);
    expect(scores.pii!.recall).toBeGreaterThanOrEqual(0.9);
    expect(scores.pii!.precision).toBeGreaterThanOrEqual(0.9);
    expect(scores.injection!.recall).toBeGreaterThanOrEqual(0.8);
    expect(scores.injection!.precision).toBeGreaterThanOrEqual(0.9);
  });
});
