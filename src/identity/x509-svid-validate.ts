import { X509Certificate } from "node:crypto";
import { MandateError } from "../errors/index.js";
import { type SpiffeId, parseSpiffeId } from "./spiffe-id.js";
import { type InspectedCertificate, inspectCertificate } from "./x509-inspect.js";

export interface ValidatedX509Svid {
  spiffeId: SpiffeId;
  leaf: X509Certificate;
  serialHex: string;
  notAfter: Date;
}

/** Leaf plus intermediates: a deeper chain is either a mistake or an attempt to make us work. */
export const MAX_CHAIN_LENGTH = 5;

function reject(reason: string): MandateError {
  return new MandateError("INVALID_CERTIFICATE", `X509-SVID rejected: ${reason}`);
}

interface Link {
  der: Buffer;
  info: InspectedCertificate;
  cert: X509Certificate;
}

function load(der: Buffer, what: string): Link {
  let info: InspectedCertificate;
  try {
    info = inspectCertificate(der);
  } catch (error) {
    throw reject(`${what}: ${(error as Error).message}`);
  }
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(der);
  } catch (error) {
    throw reject(`${what} is unreadable (${(error as Error).message})`);
  }
  return { der, info, cert };
}

/**
 * Validates an X509-SVID chain (leaf first, DER) per the SPIFFE X509-SVID standard §4–5:
 * exactly one URI SAN holding a SPIFFE ID with a path; a leaf that cannot sign
 * certificates or CRLs and may sign data; every link inside its validity, signed by the
 * next and allowed to sign; and a chain that ends at an authority in the bundle of the
 * leaf's *own* trust domain — never another domain's, even one that is trusted.
 */
export function validateX509Svid(chain: Buffer[], bundleFor: (trustDomain: string) => X509Certificate[] | undefined, now: Date = new Date()): ValidatedX509Svid {
  if (!Array.isArray(chain) || chain.length === 0) throw reject("no certificate presented");
  if (chain.length > MAX_CHAIN_LENGTH) throw reject(`chain has ${chain.length} certificates; at most ${MAX_CHAIN_LENGTH} are accepted`);
  const leaf = load(chain[0]!, "leaf");
  const spiffeId = checkLeaf(leaf.info);
  checkValidity(leaf.info, now, "leaf");

  const anchors = bundleFor(spiffeId.trustDomain);
  if (!anchors || anchors.length === 0) throw reject(`no trust bundle for trust domain ${spiffeId.trustDomain}`);
  const intermediates = chain.slice(1).map((der, i) => {
    const link = load(der, `certificate ${i + 1} of the chain`);
    checkSigningAuthority(link.info, `certificate ${i + 1} of the chain`);
    checkValidity(link.info, now, `certificate ${i + 1} of the chain`);
    return link;
  });

  // Walk up the presented order: each certificate is either signed by a bundle authority (done) or by the next one presented.
  let current = leaf;
  for (let i = 0; ; i++) {
    const anchor = anchors.find((candidate) => signedBy(current.cert, candidate));
    if (anchor) {
      checkAnchor(anchor, now);
      return { spiffeId, leaf: leaf.cert, serialHex: leaf.info.serialHex, notAfter: leaf.info.notAfter };
    }
    const parent = intermediates[i];
    if (!parent || !signedBy(current.cert, parent.cert)) break;
    current = parent;
  }
  throw reject(`not signed by a CA of trust domain ${spiffeId.trustDomain}`);
}

function checkLeaf(info: InspectedCertificate): SpiffeId {
  if (info.uriSans.length !== 1) throw reject(`leaf has ${info.uriSans.length} URI SANs; exactly one is required`);
  let spiffeId: SpiffeId;
  try {
    spiffeId = parseSpiffeId(info.uriSans[0]!);
  } catch (error) {
    throw reject(`leaf URI SAN is not a valid SPIFFE ID (${(error as Error).message})`);
  }
  if (spiffeId.path === "") throw reject(`leaf SPIFFE ID ${spiffeId.uri} has no path (that form names the trust domain itself)`);
  if (info.isCa) throw reject("leaf is a CA certificate (basicConstraints cA=TRUE)");
  if (!info.keyUsage) throw reject("leaf has no keyUsage extension; digitalSignature is required");
  if (info.keyUsage.keyCertSign) throw reject("leaf may sign certificates (keyCertSign)");
  if (info.keyUsage.cRLSign) throw reject("leaf may sign CRLs (cRLSign)");
  if (!info.keyUsage.digitalSignature) throw reject("leaf lacks the digitalSignature key usage");
  checkCriticalExtensions(info, "leaf");
  return spiffeId;
}

function checkSigningAuthority(info: InspectedCertificate, what: string): void {
  if (!info.isCa) throw reject(`${what} is not a CA (basicConstraints cA is not TRUE)`);
  if (!info.keyUsage?.keyCertSign) throw reject(`${what} may not sign certificates (no keyCertSign)`);
  checkCriticalExtensions(info, what);
}

function checkCriticalExtensions(info: InspectedCertificate, what: string): void {
  if (info.unknownCriticalExtensions.length) throw reject(`${what} has unsupported critical extension(s) ${info.unknownCriticalExtensions.join(", ")}`);
}

function checkAnchor(anchor: X509Certificate, now: Date): void {
  const info = load(anchor.raw, "trust anchor").info;
  checkValidity(info, now, "trust anchor");
}

/** Name chaining (with AKI/SKI and keyUsage, via OpenSSL's issuer check) plus the signature itself. */
function signedBy(child: X509Certificate, parent: X509Certificate): boolean {
  try {
    return child.checkIssued(parent) && child.verify(parent.publicKey);
  } catch {
    return false;
  }
}

function checkValidity(info: InspectedCertificate, now: Date, what: string): void {
  if (now.getTime() < info.notBefore.getTime()) throw reject(`${what} is not valid until ${info.notBefore.toISOString()}`);
  if (now.getTime() > info.notAfter.getTime()) throw reject(`${what} expired at ${info.notAfter.toISOString()}`);
}
