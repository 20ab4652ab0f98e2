/**
 * PostgreSQL frontend/backend protocol 3.0 framing: the few messages the proxy builds
 * itself, and incremental readers for both directions. Frames are sliced, never copied
 * more than once, so relaying a result set costs one pass over its bytes.
 */

export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
export const PROTOCOL_3_0 = 196608;

/** Default ceiling for one message; a bigger length prefix is treated as hostile. */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;
/** Startup packets are small; libpq caps them at 10,000 bytes. */
export const MAX_STARTUP_BYTES = 10_000;

export class ProtocolError extends Error {
  constructor(
    message: string,
    readonly sqlState = "08P01",
  ) {
    super(message);
  }
}

export interface Frame {
  /** the one-byte message type as a character, e.g. "Q" */
  type: string;
  /** the body after the length word */
  body: Buffer;
  /** the whole frame (type, length, body), for relaying unchanged */
  raw: Buffer;
}

/**
 * Splits a byte stream into typed frames. `push` returns the complete frames so far; a
 * partial frame waits for more bytes. Lengths beyond `maxBytes` or below 4 throw.
 */
export class FrameReader {
  private buffer: Buffer = Buffer.alloc(0);

  constructor(private readonly maxBytes = DEFAULT_MAX_MESSAGE_BYTES) {}

  push(chunk: Buffer): Frame[] {
    this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
    const frames: Frame[] = [];
    let offset = 0;
    while (this.buffer.length - offset >= 5) {
      const length = this.buffer.readUInt32BE(offset + 1);
      if (length < 4) throw new ProtocolError(`invalid message length ${length}`);
      if (length > this.maxBytes) throw new ProtocolError(`message of ${length} bytes exceeds the limit of ${this.maxBytes}`, "54000");
      if (this.buffer.length - offset < length + 1) break;
      const raw = this.buffer.subarray(offset, offset + length + 1);
      frames.push({ type: String.fromCharCode(raw[0]!), body: raw.subarray(5), raw });
      offset += length + 1;
    }
    this.buffer = offset === this.buffer.length ? Buffer.alloc(0) : this.buffer.subarray(offset);
    return frames;
  }

  /** Bytes received after the last complete frame (for a hand-off such as a TLS upgrade). */
  takeRemainder(): Buffer {
    const rest = this.buffer;
    this.buffer = Buffer.alloc(0);
    return rest;
  }

  get pendingBytes(): number {
    return this.buffer.length;
  }
}

export type StartupPacket =
  | { kind: "ssl" }
  | { kind: "gssenc" }
  | { kind: "cancel"; processId: number; secretKey: Buffer }
  | { kind: "startup"; version: number; params: Map<string, string> };

/** Reads one untyped startup-phase packet (length word first) from the front of `buffer`. */
export function readStartupPacket(buffer: Buffer): { packet: StartupPacket; consumed: number } | undefined {
  if (buffer.length < 4) return undefined;
  const length = buffer.readUInt32BE(0);
  if (length < 8 || length > MAX_STARTUP_BYTES) throw new ProtocolError(`invalid startup packet length ${length}`);
  if (buffer.length < length) return undefined;
  const code = buffer.readUInt32BE(4);
  const body = buffer.subarray(8, length);
  if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
    if (length !== 8) throw new ProtocolError("malformed SSL/GSSENC request");
    return { packet: { kind: code === SSL_REQUEST_CODE ? "ssl" : "gssenc" }, consumed: length };
  }
  if (code === CANCEL_REQUEST_CODE) {
    // Protocol 3.2 allows secret keys up to 256 bytes; 3.0 uses 4.
    if (body.length < 8 || body.length > 260) throw new ProtocolError("malformed cancel request");
    return { packet: { kind: "cancel", processId: body.readUInt32BE(0), secretKey: Buffer.from(body.subarray(4)) }, consumed: length };
  }
  if (code >> 16 !== 3) throw new ProtocolError(`unsupported frontend protocol ${code >> 16}.${code & 0xffff}: this proxy speaks 3.0`, "0A000");
  const params = new Map<string, string>();
  let offset = 0;
  while (offset < body.length) {
    const keyEnd = body.indexOf(0, offset);
    if (keyEnd < 0) throw new ProtocolError("startup packet parameters are not NUL-terminated");
    if (keyEnd === offset) break;
    const valueEnd = body.indexOf(0, keyEnd + 1);
    if (valueEnd < 0) throw new ProtocolError("startup packet parameters are not NUL-terminated");
    const key = body.toString("utf8", offset, keyEnd);
    if (params.has(key)) throw new ProtocolError(`startup parameter ${key} given twice`);
    params.set(key, body.toString("utf8", keyEnd + 1, valueEnd));
    offset = valueEnd + 1;
  }
  return { packet: { kind: "startup", version: code, params }, consumed: length };
}

export function frame(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(5 + body.length);
  out[0] = type.charCodeAt(0);
  out.writeUInt32BE(body.length + 4, 1);
  body.copy(out, 5);
  return out;
}

export function cstring(value: string): Buffer {
  return Buffer.concat([Buffer.from(value, "utf8"), Buffer.from([0])]);
}

export function int32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeInt32BE(value);
  return b;
}

export function startupMessage(params: Record<string, string>): Buffer {
  const body = Buffer.concat([int32(PROTOCOL_3_0), ...Object.entries(params).flatMap(([k, v]) => [cstring(k), cstring(v)]), Buffer.from([0])]);
  return Buffer.concat([int32(body.length + 4), body]);
}

export function sslRequest(): Buffer {
  return Buffer.concat([int32(8), int32(SSL_REQUEST_CODE)]);
}

export function cancelRequest(processId: number, secretKey: Buffer): Buffer {
  return Buffer.concat([int32(12 + secretKey.length), int32(CANCEL_REQUEST_CODE), int32(processId), secretKey]);
}

export interface ErrorFields {
  severity: "ERROR" | "FATAL";
  code: string;
  message: string;
  detail?: string | undefined;
  hint?: string | undefined;
}

export function errorResponse(fields: ErrorFields): Buffer {
  const parts = [Buffer.from("S"), cstring(fields.severity), Buffer.from("V"), cstring(fields.severity), Buffer.from("C"), cstring(fields.code), Buffer.from("M"), cstring(fields.message)];
  if (fields.detail) parts.push(Buffer.from("D"), cstring(fields.detail));
  if (fields.hint) parts.push(Buffer.from("H"), cstring(fields.hint));
  parts.push(Buffer.from([0]));
  return frame("E", Buffer.concat(parts));
}

/** Fields of an ErrorResponse or NoticeResponse body, keyed by their one-letter codes. */
export function parseErrorFields(body: Buffer): Map<string, string> {
  const fields = new Map<string, string>();
  let offset = 0;
  while (offset < body.length && body[offset] !== 0) {
    const code = String.fromCharCode(body[offset]!);
    const end = body.indexOf(0, offset + 1);
    if (end < 0) break;
    fields.set(code, body.toString("utf8", offset + 1, end));
    offset = end + 1;
  }
  return fields;
}

export function readyForQuery(status: string): Buffer {
  return frame("Z", Buffer.from(status, "latin1"));
}

export function parameterStatus(name: string, value: string): Buffer {
  return frame("S", Buffer.concat([cstring(name), cstring(value)]));
}

export function backendKeyData(processId: number, secretKey: Buffer): Buffer {
  return frame("K", Buffer.concat([int32(processId), secretKey]));
}

export function authenticationOk(): Buffer {
  return frame("R", int32(0));
}

/** Told to a client that asked for a newer minor version or `_pq_.` options. */
export function negotiateProtocolVersion(unsupported: string[]): Buffer {
  return frame("v", Buffer.concat([int32(PROTOCOL_3_0 & 0xffff), int32(unsupported.length), ...unsupported.map(cstring)]));
}

/** A cursor over a message body, for the few client messages the proxy reads. */
export class BodyReader {
  private offset = 0;
  constructor(private readonly body: Buffer) {}

  cstring(): string {
    const end = this.body.indexOf(0, this.offset);
    if (end < 0) throw new ProtocolError("string field is not NUL-terminated");
    const value = this.body.toString("utf8", this.offset, end);
    this.offset = end + 1;
    return value;
  }

  int16(): number {
    if (this.offset + 2 > this.body.length) throw new ProtocolError("message truncated");
    const v = this.body.readInt16BE(this.offset);
    this.offset += 2;
    return v;
  }

  int32(): number {
    if (this.offset + 4 > this.body.length) throw new ProtocolError("message truncated");
    const v = this.body.readInt32BE(this.offset);
    this.offset += 4;
    return v;
  }

  get remaining(): number {
    return this.body.length - this.offset;
  }
}

/** `INSERT 0 5`, `UPDATE 3`, `SELECT 10`, `COPY 7` → the row count; other tags → undefined. */
export function rowsFromCommandTag(tag: string): number | undefined {
  const match = /^(?:INSERT \d+|UPDATE|DELETE|SELECT|MOVE|FETCH|COPY|MERGE) (\d+)$/.exec(tag);
  return match ? Number(match[1]) : undefined;
}
