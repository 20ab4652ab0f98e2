import type { ServerResponse } from "node:http";
import type { GuardPolicy, Verdict } from "./guardrails/index.js";
import type { StreamGuard } from "./guardrails/stream-guard.js";
import type { ResolvedTarget } from "./registry.js";
import { SseSplitter } from "./sse.js";
import type { ToolCallRecord, Usage, WireFormat } from "./types.js";
import { FORWARDED_RESPONSE_HEADERS, type UpstreamResponse, readBody } from "./upstream.js";
import { type Wire, errorEvent } from "./wire/index.js";

/** What the relay saw, for usage, cost, the transcript and the audit event. */
export interface RelayResult {
  status: number;
  usage: Partial<Usage> | undefined;
  /** the model's text as the caller received it (after redaction), bounded */
  outputText: string;
  toolCalls: ToolCallRecord[];
  outputVerdicts: Verdict[];
  /** the caller went away before the end: the upstream request was aborted */
  clientAborted: boolean;
  /** the provider failed or stalled mid-stream */
  upstreamFailure: string | undefined;
  /** the answer was withheld by an output guardrail */
  blocked: Verdict | undefined;
  firstByteMs: number | undefined;
}

const MAX_KEPT_TEXT = 1024 * 1024;

export function responseHeaders(upstream: UpstreamResponse, extra: Record<string, string>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const name of FORWARDED_RESPONSE_HEADERS) {
    const value = upstream.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  return { ...headers, ...extra };
}

/** A provider error (after retries and fallbacks ran out) goes back exactly as the provider sent it. */
export async function relayError(upstream: UpstreamResponse, res: ServerResponse, extra: Record<string, string>, started: number): Promise<RelayResult> {
  const body = await readBody(upstream.body, 1024 * 1024).catch(() => Buffer.alloc(0));
  res.writeHead(upstream.status, { ...responseHeaders(upstream, extra), "content-length": String(body.length) });
  res.end(body);
  return { status: upstream.status, usage: undefined, outputText: "", toolCalls: [], outputVerdicts: [], clientAborted: false, upstreamFailure: undefined, blocked: undefined, firstByteMs: performance.now() - started };
}

export interface OutputScreen {
  screen(json: unknown): Promise<{ verdicts: Verdict[]; blocked: Verdict | undefined; changed: boolean }>;
  policy: GuardPolicy;
  rewrites: boolean;
}

/**
 * A complete (non-streamed) answer. Without output redaction or blocking it is passed
 * through as its bytes arrive, a copy kept for usage and the transcript; with them it is
 * read whole, screened, and sent (rewritten only where something was redacted).
 */
export async function relayJson(wire: Wire, upstream: UpstreamResponse, res: ServerResponse, extra: Record<string, string>, screen: OutputScreen, started: number, onBlocked: (verdict: Verdict) => void): Promise<RelayResult> {
  const result: RelayResult = { status: upstream.status, usage: undefined, outputText: "", toolCalls: [], outputVerdicts: [], clientAborted: false, upstreamFailure: undefined, blocked: undefined, firstByteMs: undefined };
  let body: Buffer;
  if (screen.rewrites) {
    body = await readBody(upstream.body);
    const json = parse(body);
    const outcome = await screen.screen(json);
    result.outputVerdicts = outcome.verdicts;
    if (outcome.blocked) {
      result.blocked = outcome.blocked;
      onBlocked(outcome.blocked);
      return result;
    }
    if (outcome.changed) body = Buffer.from(JSON.stringify(json));
    res.writeHead(upstream.status, { ...responseHeaders(upstream, extra), "content-length": String(body.length) });
    result.firstByteMs = performance.now() - started;
    res.end(body);
    describe(wire, json, result);
    return result;
  }
  const headers = responseHeaders(upstream, extra);
  const length = upstream.headers["content-length"];
  if (typeof length === "string") headers["content-length"] = length;
  res.writeHead(upstream.status, headers);
  const chunks: Buffer[] = [];
  let kept = 0;
  body = await new Promise<Buffer>((resolve) => {
    upstream.body.on("data", (chunk: Buffer) => {
      result.firstByteMs ??= performance.now() - started;
      if (!res.write(chunk)) {
        upstream.body.pause();
        res.once("drain", () => upstream.body.resume());
      }
      if (kept < 64 * 1024 * 1024) {
        chunks.push(chunk);
        kept += chunk.length;
      }
    });
    upstream.body.on("end", () => {
      res.end();
      resolve(Buffer.concat(chunks));
    });
    upstream.body.on("error", (error) => {
      result.upstreamFailure = error.message;
      res.destroy();
      resolve(Buffer.concat(chunks));
    });
    res.on("close", () => {
      if (!upstream.body.readableEnded) {
        result.clientAborted = true;
        upstream.body.destroy();
        resolve(Buffer.concat(chunks));
      }
    });
  });
  const json = parse(body);
  describe(wire, json, result);
  // Flag-only screening of the answer runs after it was sent: it decides nothing.
  result.outputVerdicts = (await screen.screen(json)).verdicts;
  return result;
}

function parse(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    return undefined;
  }
}

function describe(wire: Wire, json: unknown, result: RelayResult): void {
  const output = wire.output(json);
  result.usage = output.usage;
  result.toolCalls = output.toolCalls;
  result.outputText = output.texts.map((t) => t.text).join("\n").slice(0, MAX_KEPT_TEXT);
}

export interface StreamOptions {
  wire: Wire;
  format: WireFormat;
  target: ResolvedTarget;
  hideUsage: boolean;
  guard: StreamGuard | undefined;
  started: number;
}

/**
 * A streamed answer, relayed event by event as the provider sends it. When nothing has
 * to change, each chunk is written the moment it arrives and a copy is parsed for usage;
 * when the proxy asked for usage the caller did not, or output guardrails rewrite, the
 * bytes are cut at event boundaries (providers send whole events per write, so this
 * adds no wait) and only the affected events change. A provider that stalls for longer
 * than the idle timeout, or drops the connection, ends the stream with an error event
 * the SDKs raise; a caller that goes away aborts the upstream request.
 */
export function relayStream(upstream: UpstreamResponse, res: ServerResponse, extra: Record<string, string>, o: StreamOptions): Promise<RelayResult> {
  const result: RelayResult = { status: upstream.status, usage: undefined, outputText: "", toolCalls: [], outputVerdicts: [], clientAborted: false, upstreamFailure: undefined, blocked: undefined, firstByteMs: undefined };
  const splitter = new SseSplitter();
  const observer = o.wire.observer(o.hideUsage);
  const transform = o.hideUsage || o.guard !== undefined;
  const body = upstream.body;
  res.writeHead(upstream.status, responseHeaders(upstream, extra));
  return new Promise<RelayResult>((resolve) => {
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(idle);
      result.usage = observer.usage();
      result.toolCalls = observer.toolCalls();
      if (o.guard) result.outputVerdicts = o.guard.verdicts();
      resolve(result);
    };
    const write = (bytes: Buffer) => {
      result.firstByteMs ??= performance.now() - o.started;
      if (!res.write(bytes)) {
        body.pause();
        res.once("drain", () => body.resume());
      }
    };
    const failMidStream = (message: string) => {
      if (done) return;
      result.upstreamFailure = message;
      body.destroy();
      if (!res.writableEnded && !res.destroyed) res.end(errorEvent(o.format, new Error(message)));
      finish();
    };
    let idle = setTimeout(() => failMidStream(`${o.target.id} sent nothing for ${o.target.provider.streamIdleTimeoutMs} ms; the stream was abandoned`), o.target.provider.streamIdleTimeoutMs);
    body.on("data", (chunk: Buffer) => {
      if (done) return;
      idle.refresh();
      if (!transform) write(chunk);
      let events;
      try {
        events = splitter.push(chunk);
      } catch (error) {
        return failMidStream((error as Error).message);
      }
      for (const event of events) {
        const reading = observer.read(event.event, event.data, event.raw);
        if (reading.text !== undefined && result.outputText.length < MAX_KEPT_TEXT) result.outputText += reading.text;
        if (!transform || reading.drop) continue;
        const bytes = reading.bytes ?? event.raw;
        if (!o.guard) {
          write(bytes);
          continue;
        }
        for (const out of o.guard.push(bytes, reading)) write(out);
        if (o.guard.blocked) {
          result.blocked = o.guard.blocked;
          body.destroy();
          res.end(errorEvent(o.format, new Error(`guardrail: the ${o.guard.blocked.detector} guardrail withheld the rest of the answer`)));
          return finish();
        }
      }
    });
    body.on("end", () => {
      if (done) return;
      if (transform) {
        for (const out of o.guard?.flush() ?? []) write(out);
        if (o.guard?.blocked) {
          result.blocked = o.guard.blocked;
          res.end(errorEvent(o.format, new Error(`guardrail: the ${o.guard.blocked.detector} guardrail withheld the rest of the answer`)));
          return finish();
        }
        if (splitter.buffered) write(splitter.rest());
      }
      res.end();
      finish();
    });
    body.on("error", (error) => failMidStream(`${o.target.id} failed mid-stream: ${error.message}`));
    body.on("close", () => {
      if (!body.readableEnded) failMidStream(`${o.target.id} closed the stream before its end`);
    });
    res.on("close", () => {
      if (done || res.writableFinished) return;
      result.clientAborted = true;
      body.destroy();
      finish();
    });
  });
}
