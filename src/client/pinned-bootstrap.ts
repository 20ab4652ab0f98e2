import { X509Certificate, createHash } from "node:crypto";
import { connect, type PeerCertificate } from "node:tls";
import { MandateError } from "../errors/index.js";
import { parseServerUrl } from "./http-client.js";

/**
 * First contact with a control plane whose CA the client knows only by its pin.
 * The handshake's chain is read, its root checked against the pin, and every link's
 * signature verified, before anything is sent; the connection is then closed, and all
 * requests go over new connections that trust only that root. This is how a joining
 * host avoids both blind trust and a man in the middle handing out another CA.
 */
export async function fetchPinnedRoot(serverUrl: string, pin: string, timeoutMs = 10_000): Promise<X509Certificate> {
  const url = parseServerUrl(serverUrl);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const chain = await new Promise<PeerCertificate[]>((resolvePromise, reject) => {
    const socket = connect({
      host,
      port: Number(url.port || 443),
      servername: /^[\d.]+$|:/.test(host) ? undefined : host,
      // The pin, checked below, is the trust decision here; the TLS layer cannot
      // check a CA it has not been given yet, so it only delivers the chain.
      rejectUnauthorized: false,
      timeout: timeoutMs,
    });
    socket.once("secureConnect", () => {
      const chainOut: PeerCertificate[] = [];
      let current: PeerCertificate | undefined = socket.getPeerCertificate(true);
      while (current?.raw && chainOut.length < 6) {
        chainOut.push(current);
        const next: PeerCertificate | undefined = (current as PeerCertificate & { issuerCertificate?: PeerCertificate }).issuerCertificate;
        if (!next || next === current || next.fingerprint256 === current.fingerprint256) break;
        current = next;
      }
      socket.destroy();
      resolvePromise(chainOut);
    });
    socket.once("timeout", () => socket.destroy(new MandateError("CONNECTION_FAILED", `no TLS handshake with ${url.origin} within ${timeoutMs / 1000}s`)));
    socket.once("error", (error) =>
      reject(error instanceof MandateError ? error : new MandateError("CONNECTION_FAILED", `cannot reach ${url.origin}: ${error.message}`, { cause: error })),
    );
  });
  return verifyChainAgainstPin(chain.map((c) => new X509Certificate(c.raw)), pin, url.origin);
}

export function verifyChainAgainstPin(chain: X509Certificate[], pin: string, origin: string): X509Certificate {
  if (chain.length < 2) throw new MandateError("CA_PIN_MISMATCH", `${origin} did not present a certificate chain ending in a root CA`);
  const root = chain[chain.length - 1]!;
  const rootPin = `sha256:${createHash("sha256").update(root.publicKey.export({ type: "spki", format: "der" })).digest("hex")}`;
  if (rootPin !== pin) {
    throw new MandateError(
      "CA_PIN_MISMATCH",
      `${origin} presented a CA with pin ${rootPin}, but ${pin} was expected; refusing to continue (wrong server, or someone in the middle)`,
    );
  }
  if (!root.verify(root.publicKey)) throw new MandateError("CA_PIN_MISMATCH", `${origin}: the pinned root's self-signature does not verify`);
  for (let i = 0; i < chain.length - 1; i++) {
    const child = chain[i]!;
    const parent = chain[i + 1]!;
    if (!child.checkIssued(parent) || !child.verify(parent.publicKey)) {
      throw new MandateError("CA_PIN_MISMATCH", `${origin}: certificate ${i} of the presented chain is not signed by the next one`);
    }
  }
  return root;
}
