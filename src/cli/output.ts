import { MandateError, isMandateError } from "../errors/index.js";

export type OutputFormat = "table" | "json" | "jsonl" | "text";

export interface Io {
  out: (text: string) => void;
  err: (text: string) => void;
}

export const processIo: Io = {
  out: (text) => process.stdout.write(text.endsWith("\n") ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith("\n") ? text : `${text}\n`),
};

export function printJson(io: Io, value: unknown): void {
  io.out(JSON.stringify(value, null, 2));
}

/** A plain aligned table: scripts use --format json, people read this. */
export function printTable(io: Io, headers: string[], rows: (string | number | null | undefined)[][]): void {
  if (rows.length === 0) {
    io.out("(none)");
    return;
  }
  const cells = rows.map((r) => r.map((c) => (c === null || c === undefined ? "-" : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ");
  io.out([line(headers), line(widths.map((w) => "-".repeat(w))), ...cells.map(line)].join("\n"));
}

export function printError(io: Io, error: unknown, format: OutputFormat): number {
  const mandateError = isMandateError(error) ? error : new MandateError("INTERNAL", (error as Error)?.message ?? String(error));
  if (format === "json") io.err(JSON.stringify({ error: mandateError.toJSON() }));
  else io.err(`error: ${mandateError.message} [${mandateError.code}]`);
  return 1;
}
