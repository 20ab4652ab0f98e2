import type { Command } from "commander";
import type { UsageRow } from "../../llm/index.js";
import { parseDuration } from "../duration.js";
import { type Io, printJson, printTable } from "../output.js";
import { adminOptions, withAdminClient } from "./shared.js";

const COLUMNS: [string, keyof UsageRow][] = [
  ["requests", "requests"],
  ["errors", "errors"],
  ["input_tokens", "inputTokens"],
  ["output_tokens", "outputTokens"],
  ["cached_tokens", "cachedTokens"],
  ["reasoning_tokens", "reasoningTokens"],
  ["cost_usd", "costUsd"],
];

function csvCell(value: string | number): string {
  const text = String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function registerUsage(program: Command, io: Io): void {
  adminOptions(
    program
      .command("usage")
      .description("Model requests, tokens and cost through the LLM proxy, grouped by team, agent, model or delegation")
      .option("--by <dimension>", "team | agent | model | delegation", "model")
      .option("--since <duration>", "how far back", "30d")
      .addHelpText(
        "after",
        `
Teams are the agents' \`team\` label (mandate agents add … --labels team=sre).

Examples:
  mandate usage --by team --since 7d
  mandate usage --by agent --format json | jq '.rows[] | select(.costUsd > 1)'
  mandate usage --by delegation --since 24h --format csv > usage.csv`,
      ),
    ["table", "json", "csv"],
  ).action(async (opts: { by: string; since: string }, cmd: Command) => {
    await withAdminClient(cmd, async (client, g) => {
      const since = Date.now() - parseDuration(opts.since, "--since");
      const report = await client.request<{ by: string; since: string; rows: UsageRow[] }>("GET", `/v1/llm/usage?by=${encodeURIComponent(opts.by)}&since=${since}`);
      const format = g.format as string;
      if (format === "json") return printJson(io, report);
      if (format === "csv") {
        io.out([[opts.by, ...COLUMNS.map(([h]) => h)].join(","), ...report.rows.map((r) => [csvCell(r.key), ...COLUMNS.map(([, k]) => csvCell(r[k]))].join(","))].join("\n"));
        return;
      }
      printTable(io, [opts.by.toUpperCase(), ...COLUMNS.map(([h]) => h.toUpperCase().replace("_", " "))], report.rows.map((r) => [r.key, ...COLUMNS.map(([, k]) => (k === "costUsd" ? `$${r.costUsd.toFixed(4)}` : r[k]))]));
      const total = report.rows.reduce((s, r) => s + r.costUsd, 0);
      io.out(`\nsince ${report.since}: ${report.rows.reduce((s, r) => s + r.requests, 0)} requests, $${total.toFixed(4)}`);
    });
  });
}
