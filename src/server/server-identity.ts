import { type KeyObject, X509Certificate, generateKeyPairSync } from "node:crypto";
import { hostname } from "node:os";
import { isIP } from "node:net";
import { ADMIN_PATH, SERVER_PATH, type TrustDomainAuthority, certToPem, generateServerCertificate, inspectCertificate, keyToPem } from "../identity/index.js";
import type { Store } from "../store/index.js";

export interface IssuedKeyPair {
  certDer: Buffer;
  cert: X509Certificate;
  privateKey: KeyObject;
  /** Leaf, the intermediate that signed it, then the root: the root is sent so joining clients can check it against their pin. */
  chainPem: string;
  keyPem: string;
  notAfter: number;
  issuedAt: number;
}

/**
 * Certificates the control plane issues to itself: its TLS server certificate and the
 * local admin credential. Built on the slow path (rare), recorded like any SVID so CA
 * rotation keeps their intermediate published until they expire.
 */
export async function issueControlPlaneCertificate(
  authority: TrustDomainAuthority,
  store: Store,
  purpose: "server" | "admin",
  names: string[],
  ttlMs: number,
  now: number,
): Promise<IssuedKeyPair> {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const signer = authority.x509Signer;
  const spiffeId = `spiffe://${authority.trustDomain}${purpose === "server" ? SERVER_PATH : ADMIN_PATH}`;
  const certDer = await generateServerCertificate({
    trustDomain: authority.trustDomain,
    spiffeId,
    dnsNames: names.filter((n) => isIP(n) === 0),
    ipAddresses: names.filter((n) => isIP(n) !== 0),
    publicKey,
    issuer: { cert: signer.cert, privateKey: signer.privateKey },
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + ttlMs),
  });
  const cert = new X509Certificate(certDer);
  const notAfter = new Date(cert.validTo).getTime();
  await store.writeDurably(async (tx) => {
    await tx
      .insertInto("issued_svids")
      .values({ serial: inspectCertificate(certDer).serialHex, spiffe_id: spiffeId, agent_name: null, instance_id: null, authority_id: signer.authorityId, not_after: notAfter, issued_at: now })
      .execute();
  });
  return {
    certDer,
    cert,
    privateKey,
    chainPem: certToPem(certDer) + certToPem(signer.certDer) + certToPem(authority.rootCertificate.raw),
    keyPem: keyToPem(privateKey),
    notAfter,
    issuedAt: now,
  };
}

/** Every name a client might dial: loopback, this host, the listen host, and the declared public addresses. */
export function serverCertificateNames(listenHost: string, publicHosts: string[]): string[] {
  const names = new Set(["localhost", "127.0.0.1", "::1", hostname()]);
  if (listenHost && listenHost !== "0.0.0.0" && listenHost !== "::") names.add(listenHost);
  for (const host of publicHosts) names.add(host);
  return [...names].filter((n) => n.length > 0);
}
