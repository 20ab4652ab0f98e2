import { type KeyObject, sign } from "node:crypto";
import { type TLSSocket, connect } from "node:tls";

/**
 * The load generator's side of proof renewal, kept as lean as an HTTP/1.1 client can be
 * so the benchmark measures the server: one kept-alive TLS socket per agent instance, one
 * request in flight on it (no pipelining), request bytes assembled from pre-built parts,
 * and of the response only the status line, `content-length` and the three fields the
 * next proof needs. What must still be new each time is what the server checks: the
 * proof names the presented SVID (x5c, serial), the generation it carries (the server's
 * compare-and-set), the moment (iat) and the new CSR's digest, so it is signed per renewal.
 */
export interface ProofIdentity {
  privateKey: KeyObject;
  /** The current leaf, standard base64 of its DER: exactly the `x5c[0]` text. */
  leafBase64: string;
  generation: number;
  serial: string;
  /** `{"aud":…,"sub":…,"instance":…,"iat":` with this identity's constant claims, JSON-escaped once. */
  claimsPrefix: string;
}

export interface FreshCsr {
  privateKey: KeyObject;
  /** `{"csr":"<PEM, JSON-escaped>","proof":"`, the part of the body fixed before the run. */
  bodyPrefix: string;
  digest: string;
}

export interface RenewalResponse {
  status: number;
  body: Buffer;
}

const PROOF_HEADER_PREFIX = '{"alg":"ES256","typ":"mandate-renewal+jwt","x5c":["';
const CERT_BEGIN = '"svidPem":"-----BEGIN CERTIFICATE-----\\n';
const CERT_END = "\\n-----END CERTIFICATE-----";
const HEADER_END = Buffer.from("\r\n\r\n");
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;

export function claimsPrefix(claims: { aud: string; sub: string; instance: string }): string {
  return `{"aud":${JSON.stringify(claims.aud)},"sub":${JSON.stringify(claims.sub)},"instance":${JSON.stringify(claims.instance)},"iat":`;
}

export function bodyPrefix(csrPem: string): string {
  return `{"csr":${JSON.stringify(csrPem)},"proof":"`;
}

/** The renewal request body: the CSR and a proof, signed now by the identity's current key. */
export function renewalBody(identity: ProofIdentity, fresh: FreshCsr, iat: number): string {
  const header = Buffer.from(`${PROOF_HEADER_PREFIX}${identity.leafBase64}"]}`).toString("base64url");
  const payload = Buffer.from(`${identity.claimsPrefix}${iat},"generation":${identity.generation},"serial":"${identity.serial}","csr":"${fresh.digest}"}`).toString("base64url");
  const signingInput = `${header}.${payload}`;
  const signature = sign("sha256", Buffer.from(signingInput), { key: identity.privateKey, dsaEncoding: "ieee-p1363" });
  return `${fresh.bodyPrefix}${signingInput}.${signature.toString("base64url")}"}`;
}

/**
 * Takes the renewed SVID from a 200 answer without parsing the JSON: the leaf (the first
 * PEM block of `svidPem`), `generation` and `serial`. Undefined when one is missing.
 */
export function renewedIdentity(body: Buffer): { leafBase64: string; generation: number; serial: string } | undefined {
  const text = body.toString("latin1");
  const begin = text.indexOf(CERT_BEGIN);
  const end = begin < 0 ? -1 : text.indexOf(CERT_END, begin);
  const generationAt = text.indexOf('"generation":');
  const serialAt = text.indexOf('"serial":"');
  if (end < 0 || generationAt < 0 || serialAt < 0) return undefined;
  const serialEnd = text.indexOf('"', serialAt + 10);
  return {
    leafBase64: text.slice(begin + CERT_BEGIN.length, end).replaceAll("\\n", ""),
    generation: Number.parseInt(text.slice(generationAt + 13, generationAt + 30), 10),
    serial: text.slice(serialAt + 10, serialEnd),
  };
}

/** One kept-alive TLS connection carrying one request at a time; reconnects after a close. */
export class RenewalConnection {
  private socket: TLSSocket | undefined;
  private buffered: Buffer | undefined;
  private bodyStart = -1;
  private bodyLength = -1;
  private status = 0;
  private pending: { resolve: (r: RenewalResponse) => void; reject: (e: Error) => void } | undefined;
  private readonly head: string;

  constructor(private readonly target: { host: string; port: number; path: string; ca: string }) {
    this.head = `POST ${target.path} HTTP/1.1\r\nhost: ${target.host}:${target.port}\r\ncontent-type: application/json\r\ncontent-length: `;
  }

  post(body: string): Promise<RenewalResponse> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.buffered = undefined;
      this.bodyStart = -1;
      // Bodies are ASCII (PEM, base64url, JSON punctuation), so characters are bytes.
      this.connected().write(`${this.head}${body.length}\r\n\r\n${body}`, "latin1");
    });
  }

  close(): void {
    this.socket?.destroy();
  }

  private connected(): TLSSocket {
    if (this.socket && !this.socket.destroyed) return this.socket;
    const socket = connect({ host: this.target.host, port: this.target.port, ca: this.target.ca });
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.received(chunk));
    const fail = (error: Error) => {
      if (this.socket === socket) this.socket = undefined;
      const pending = this.pending;
      this.pending = undefined;
      pending?.reject(error);
    };
    socket.on("error", fail);
    socket.on("close", () => fail(new Error("connection closed")));
    this.socket = socket;
    return socket;
  }

  private received(chunk: Buffer): void {
    const data = this.buffered ? Buffer.concat([this.buffered, chunk]) : chunk;
    if (this.bodyStart < 0) {
      const headerEnd = data.indexOf(HEADER_END);
      if (headerEnd < 0) {
        this.buffered = data;
        return;
      }
      const head = data.toString("latin1", 0, headerEnd);
      this.status = Number(head.slice(9, 12));
      const length = CONTENT_LENGTH.exec(head);
      if (!length) {
        this.socket?.destroy(new Error(`a response without content-length: ${head.slice(0, 200)}`));
        return;
      }
      this.bodyStart = headerEnd + 4;
      this.bodyLength = Number(length[1]);
    }
    if (data.length < this.bodyStart + this.bodyLength) {
      this.buffered = data;
      return;
    }
    const pending = this.pending;
    this.pending = undefined;
    this.buffered = undefined;
    pending?.resolve({ status: this.status, body: data.subarray(this.bodyStart, this.bodyStart + this.bodyLength) });
  }
}
