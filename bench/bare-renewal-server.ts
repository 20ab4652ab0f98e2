import { type KeyObject, constants as cryptoConstants, createPublicKey, sign, verify } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer } from "node:https";
import type { AddressInfo } from "node:net";
import type { ActiveX509Signer } from "../src/identity/authority.js";
import { parseCsr, verifyCsr } from "../src/identity/csr.js";
import { csrDigest, inspectPresentedLeaf, parseRenewalProof } from "../src/identity/renewal-proof.js";
import type { SignatureVerifierPool } from "../src/identity/signature-pool.js";
import { readSubjectPublicKey } from "../src/identity/spki.js";
import { certToPem, randomSerial, serialToHex } from "../src/identity/x509-util.js";

/**
 * The reference a Node HTTP API on this machine is measured against: node's own HTTPS
 * server with the control plane's TLS settings, kept-alive, whose handler does exactly the
 * crypto of a proof renewal with Mandate's own functions — parse the proof and the leaf it
 * presents, verify the proof's ES256 signature, parse the CSR, check the proof covers it,
 * verify the CSR, build the leaf from the DER template and sign it, all on the same
 * signature worker as the control plane — and nothing else: no framework, no store, no
 * audit, no locks, no generation compare-and-set. It answers with the fields and about
 * the size of the control plane's answer (chain, bundle, JWT bundle), so TLS carries the
 * same bytes.
 *
 * `crypto` picks where that crypto runs: `worker` (as the control plane: the signature
 * worker), `inline` (synchronously on the event loop, the cheapest public-key import node
 * has, JWK, and the proof key found again by its SPKI bytes), or `none`: the answer of the
 * first renewal again each time, so the row is node's HTTPS server and the load
 * generator alone, the floor under any renewal API in Node.
 */
export interface BareRenewalServerOptions {
  keyPem: string;
  certPem: string;
  caPem: string;
  signer: ActiveX509Signer;
  pool: SignatureVerifierPool;
  bundlePem: string;
  jwtBundle: object;
  crypto: "worker" | "inline" | "none";
}

const SVID_TTL_MS = 3600_000;
const BACKDATE_MS = 60_000;

export async function startBareRenewalServer(options: BareRenewalServerOptions): Promise<{ url: string; close: () => Promise<void> }> {
  const { signer, pool } = options;
  const chainTail = certToPem(signer.certDer);
  const jwtBundle = JSON.stringify(options.jwtBundle);

  const inlineKeys = new Map<string, KeyObject>();
  const inlineKey = (spkiDer: Buffer): KeyObject => {
    const id = spkiDer.toString("latin1");
    let key = inlineKeys.get(id);
    if (!key) {
      const { material } = readSubjectPublicKey(spkiDer, "INVALID_CSR");
      if (material.kind !== "ec") throw new Error("only EC keys here");
      key = createPublicKey({ key: { kty: "EC", crv: material.namedCurve, x: material.point.subarray(1, 33).toString("base64url"), y: material.point.subarray(33).toString("base64url") }, format: "jwk" });
      if (inlineKeys.size >= 16_384) inlineKeys.delete(inlineKeys.keys().next().value!);
      inlineKeys.set(id, key);
    }
    return key;
  };
  const inline = options.crypto === "inline";
  let canned: string | undefined;

  async function renew(text: string): Promise<string> {
    if (canned) return canned;
    const body = JSON.parse(text) as { csr: string; proof: string };
    const proof = parseRenewalProof(body.proof);
    const leaf = inspectPresentedLeaf(proof.leafDer);
    const proofOk = inline
      ? verify("sha256", proof.signingInput, { key: inlineKey(leaf.spkiDer), dsaEncoding: "ieee-p1363" }, proof.signature)
      : await pool.verify("sha256", leaf.spkiDer, proof.signingInput, proof.signature, { p1363: true });
    if (!proofOk) throw new Error("proof signature does not verify");
    const csr = parseCsr(body.csr);
    if (csrDigest(csr.der) !== proof.claims.csr) throw new Error("the proof covers another CSR");
    if (!inline) await verifyCsr(csr, pool);
    else if (!verify("sha256", csr.certificationRequestInfoDer, inlineKey(csr.spkiDer), csr.signature)) throw new Error("CSR signature does not verify");
    const t = Date.now();
    const serial = randomSerial();
    const der = await signer.builder.buildX509Svid(
      { spiffeId: leaf.spiffeId.uri, spkiDer: csr.spkiDer, keyAlgorithm: csr.keyAlgorithm, serial, notBefore: new Date(t - BACKDATE_MS), notAfter: new Date(t + SVID_TTL_MS) },
      inline ? async (tbs, privateKey) => sign("sha256", tbs, privateKey) : (tbs, privateKey) => pool.sign(signer.authorityId, privateKey, tbs),
    );
    const answer = {
      spiffeId: leaf.spiffeId.uri,
      instanceId: proof.claims.instance,
      serial: serialToHex(serial).toLowerCase(),
      generation: proof.claims.generation + 1,
      expiresAt: new Date(t + SVID_TTL_MS).toISOString(),
      svidPem: certToPem(der) + chainTail,
      bundlePem: options.bundlePem,
    };
    const json = `${JSON.stringify(answer).slice(0, -1)},"jwtBundle":${jwtBundle}}`;
    if (options.crypto === "none") canned = json;
    return json;
  }

  function handle(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      renew(Buffer.concat(chunks).toString()).then(
        (answer) => response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(answer) }).end(answer),
        (error: Error) => response.writeHead(400, { "content-type": "text/plain" }).end(error.message),
      );
    });
  }

  const server = createServer(
    {
      key: options.keyPem,
      cert: options.certPem,
      ca: options.caPem,
      requestCert: true,
      rejectUnauthorized: false,
      minVersion: "TLSv1.2",
      secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
    },
    handle,
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
