import { X509Certificate } from "node:crypto";
import { MandateError } from "../errors/index.js";
import { type SpiffeId, parseSpiffeId } from "./spiffe-id.js";
import { inspectCertificate } from "./x509-inspect.js";

export interface ValidatedX509Svid {
  spiffeId: SpiffeId;
  leaf: X509Certificate;
  serialHex: string;
  notAfter: Date;
}

const MAX_CHAIN = 5;

function reject(reason: string): MandateError {
  return new MandateError("INVALID_CERTIFICATE", `X509-SVID rejected: ${reason}`);
}

/**
 * Validates an X509-SVID chain (leaf first) per the SPIFFE X509-SVID standard §4–5:
 * exactly one URI SAN holding a SPIFFE ID with a path, a leaf that cannot sign
 * certificates, every link inside its validity, and a chain that ends at an authority
 * of the leaf's *own* trust domain — never another domain's, even if that one is trusted.
 */
export function validateX509Svid(chain: Buffer[], bundleFor: (trustDomain: string) => X509Certificate[] | undefined, now: Date = new Date()): ValidatedX509Svid {
  if (chain.length === 0) throw reject("no certificate presented");
  if (chain.length > MAX_CHAIN) throw reject(`chain longer than ${MAX_CHAIN}`);
  const info = inspectCertificate(chain[0]!);
  if (info.uriSans.length !== 1) throw reject(`leaf has ${info.uriSans.length} URI SANs; exactly one is required`);
  let spiffeId: SpiffeId;
  try {
    spiffeId = parseSpiffeId(info.uriSans[0]!);
  } catch (error) {
    throw reject(`leaf URI SAN is not a valid SPIFFE ID (${(error as Error).message})`);
  }
  if (spiffeId.path === "") throw reject("leaf SPIFFE ID has no path (that form is reserved for the trust domain itself)");
  if (info.isCa) throw reject("leaf is a CA certificate");
  if (info.keyUsage && (info.keyUsage.keyCertSign || info.keyUsage.cRLSign)) throw reject("leaf may sign certificates or CRLs");
  if (info.keyUsage && !info.keyUsage.digitalSignature) throw reject("leaf lacks the digitalSignature key usage");
  checkValidity(info.notBefore, info.notAfter, now, "leaf");

  const anchors = bundleFor(spiffeId.trustDomain);
  if (!anchors || anchors.length === 0) throw reject(`no trust bundle for trust domain ${spiffeId.trustDomain}`);
  let certs: X509Certificate[];
  try {
    certs = chain.map((der) => new X509Certificate(der));
  } catch (error) {
    throw reject(`unreadable certificate (${(error as Error).message})`);
  }
  for (let i = 1; i < chain.length; i++) {
    const intermediate = inspectCertificate(chain[i]!);
    if (!intermediate.isCa) throw reject(`certificate ${i} of the chain is not a CA`);
    if (intermediate.keyUsage && !intermediate.keyUsage.keyCertSign) throw reject(`certificate ${i} of the chain may not sign certificates`);
    checkValidity(intermediate.notBefore, intermediate.notAfter, now, `certificate ${i} of the chain`);
  }
  if (chainReachesAnchor(certs, anchors, now)) return { spiffeId, leaf: certs[0]!, serialHex: info.serialHex, notAfter: info.notAfter };
  throw reject(`not signed by a CA of trust domain ${spiffeId.trustDomain}`);
}

/** Walks up the presented chain until a link is signed by (or is) an authority of the bundle. */
function chainReachesAnchor(certs: X509Certificate[], anchors: X509Certificate[], now: Date): boolean {
  const signedBy = (child: X509Certificate, parent: X509Certificate) => {
    try {
      return child.checkIssued(parent) && child.verify(parent.publicKey);
    } catch {
      return false;
    }
  };
  for (let i = 0; i < certs.length; i++) {
    const cert = certs[i]!;
    const anchor = anchors.find((a) => a.raw.equals(cert.raw) && i > 0) ?? anchors.find((a) => signedBy(cert, a));
    if (anchor) {
      const anchorInfo = inspectCertificate(anchor.raw);
      checkValidity(anchorInfo.notBefore, anchorInfo.notAfter, now, "trust anchor");
      return true;
    }
    const parent = certs[i + 1];
    if (!parent || !signedBy(cert, parent)) return false;
  }
  return false;
}

function checkValidity(notBefore: Date, notAfter: Date, now: Date, what: string): void {
  if (now.getTime() < notBefore.getTime()) throw reject(`${what} is not valid until ${notBefore.toISOString()}`);
  if (now.getTime() > notAfter.getTime()) throw reject(`${what} expired at ${notAfter.toISOString()}`);
}
