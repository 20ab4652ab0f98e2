import { KeyObject, X509Certificate, webcrypto } from "node:crypto";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { isMandateError } from "../errors/index.js";
import { type GeneratedAuthority, generateIntermediateAuthority, generateRootAuthority } from "./authority-keys.js";
import { createX509SvidBuilder } from "./x509-svid-builder.js";
import { validateX509Svid } from "./x509-svid-validate.js";
import { EC_P256, randomSerial, x509 } from "./x509-util.js";

let rootA: GeneratedAuthority;
let intA: GeneratedAuthority;
let rootB: GeneratedAuthority;
let leafKeys: webcrypto.CryptoKeyPair;
const HOUR = 3600_000;

beforeAll(async () => {
  const t = Date.now();
  rootA = await generateRootAuthority("a.org", new Date(t - HOUR), new Date(t + 1000 * HOUR));
  intA = await generateIntermediateAuthority("a.org", rootA, new Date(t - HOUR), new Date(t + 900 * HOUR));
  rootB = await generateRootAuthority("b.org", new Date(t - HOUR), new Date(t + 1000 * HOUR));
  leafKeys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
});

/** A leaf with arbitrary (possibly non-compliant) contents, signed by `issuer`. */
async function leaf(issuer: GeneratedAuthority, options: { uris?: string[]; ca?: boolean; usage?: number | null; notBefore?: Date; notAfter?: Date; extra?: x509.Extension[] } = {}): Promise<Buffer> {
  const signingKey = await webcrypto.subtle.importKey("pkcs8", issuer.privateKey.export({ type: "pkcs8", format: "der" }), EC_P256, false, ["sign"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial().toString("hex"),
    subject: "CN=leaf",
    issuer: new x509.X509Certificate(issuer.certDer).subject,
    notBefore: options.notBefore ?? new Date(Date.now() - 60_000),
    notAfter: options.notAfter ?? new Date(Date.now() + HOUR),
    signingAlgorithm: EC_P256,
    publicKey: leafKeys.publicKey,
    signingKey,
    extensions: [
      new x509.BasicConstraintsExtension(options.ca ?? false, undefined, true),
      ...(options.usage === null ? [] : [new x509.KeyUsagesExtension(options.usage ?? x509.KeyUsageFlags.digitalSignature, true)]),
      new x509.SubjectAlternativeNameExtension((options.uris ?? ["spiffe://a.org/agent/x"]).map((value) => ({ type: "url" as const, value }))),
      ...(options.extra ?? []),
    ],
  });
  return Buffer.from(cert.rawData);
}

/** An intermediate under `parent` with chosen flaws. */
async function intermediateCa(parent: GeneratedAuthority, options: { usage?: number; notAfter?: Date }): Promise<GeneratedAuthority> {
  const caKeys = (await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial().toString("hex"),
    subject: "CN=flawed intermediate",
    issuer: new x509.X509Certificate(parent.certDer).subject,
    notBefore: new Date(Date.now() - HOUR),
    notAfter: options.notAfter ?? new Date(Date.now() + HOUR),
    signingAlgorithm: EC_P256,
    publicKey: caKeys.publicKey,
    signingKey: await webcrypto.subtle.importKey("pkcs8", parent.privateKey.export({ type: "pkcs8", format: "der" }), EC_P256, false, ["sign"]),
    extensions: [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(options.usage ?? x509.KeyUsageFlags.keyCertSign, true)],
  });
  const certDer = Buffer.from(cert.rawData);
  return { certDer, cert: new X509Certificate(certDer), privateKey: KeyObject.from(caKeys.privateKey) };
}

const bundles = () => (td: string) => (td === "a.org" ? [rootA.cert] : td === "b.org" ? [rootB.cert] : undefined);

function rejection(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(isMandateError(error, "INVALID_CERTIFICATE")).toBe(true);
    return (error as Error).message;
  }
  throw new Error("expected a rejection");
}

describe("X509-SVID validation (SPIFFE X509-SVID §4–5)", () => {
  it("accepts a compliant leaf + intermediate chaining to its own trust domain", async () => {
    const result = validateX509Svid([await leaf(intA), intA.certDer], bundles());
    expect(result.spiffeId.uri).toBe("spiffe://a.org/agent/x");
    const fast = await createX509SvidBuilder(intA).buildX509Svid({ spiffeId: "spiffe://a.org/agent/y", spkiDer: Buffer.from(await webcrypto.subtle.exportKey("spki", leafKeys.publicKey)), keyAlgorithm: "ec-p256", serial: randomSerial(), notBefore: new Date(Date.now() - 1000), notAfter: new Date(Date.now() + HOUR) });
    expect(validateX509Svid([fast, intA.certDer], bundles()).spiffeId.uri).toBe("spiffe://a.org/agent/y");
  });

  it("rejects a leaf of trust domain B signed by trust domain A's CA", async () => {
    const forged = await leaf(intA, { uris: ["spiffe://b.org/agent/x"] });
    expect(rejection(() => validateX509Svid([forged, intA.certDer], bundles()))).toContain("trust domain b.org");
  });

  it("rejects expired, not-yet-valid (issuer clock 10 minutes ahead), CA and cert-signing leaves", async () => {
    const expired = await leaf(intA, { notBefore: new Date(Date.now() - 2 * HOUR), notAfter: new Date(Date.now() - HOUR) });
    expect(rejection(() => validateX509Svid([expired, intA.certDer], bundles()))).toContain("expired");
    const ahead = await leaf(intA, { notBefore: new Date(Date.now() + 9 * 60_000) });
    expect(rejection(() => validateX509Svid([ahead, intA.certDer], bundles()))).toContain("not valid until");
    const caLeaf = await leaf(intA, { ca: true, usage: x509.KeyUsageFlags.digitalSignature });
    expect(rejection(() => validateX509Svid([caLeaf, intA.certDer], bundles()))).toContain("CA");
    const signer = await leaf(intA, { usage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyCertSign });
    expect(rejection(() => validateX509Svid([signer, intA.certDer], bundles()))).toContain("sign certificates");
    const crl = await leaf(intA, { usage: x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.cRLSign });
    expect(rejection(() => validateX509Svid([crl, intA.certDer], bundles()))).toContain("CRLs");
  });

  it("rejects zero or two URI SANs, a non-SPIFFE URI and a root path", async () => {
    expect(rejection(() => validateX509Svid([fixtures.none!, intA.certDer], bundles()))).toContain("0 URI SANs");
    expect(rejection(() => validateX509Svid([fixtures.two!, intA.certDer], bundles()))).toContain("2 URI SANs");
    expect(rejection(() => validateX509Svid([fixtures.https!, intA.certDer], bundles()))).toContain("not a valid SPIFFE ID");
    expect(rejection(() => validateX509Svid([fixtures.root!, intA.certDer], bundles()))).toContain("no path");
  });

  it("requires a keyUsage with digitalSignature, and refuses unknown critical extensions", async () => {
    expect(rejection(() => validateX509Svid([fixtures.noUsage!, intA.certDer], bundles()))).toContain("no keyUsage");
    const keyAgreementOnly = await leaf(intA, { usage: x509.KeyUsageFlags.keyAgreement });
    expect(rejection(() => validateX509Svid([keyAgreementOnly, intA.certDer], bundles()))).toContain("lacks the digitalSignature");
    const unknownCritical = await leaf(intA, { extra: [new x509.Extension("1.2.3.4.5", true, new Uint8Array([5, 0]))] });
    expect(rejection(() => validateX509Svid([unknownCritical, intA.certDer], bundles()))).toContain("unsupported critical extension(s) 1.2.3.4.5");
  });

  it("accepts a leaf signed directly by a bundle authority, and an anchor presented in the chain", async () => {
    const direct = await leaf(rootA);
    expect(validateX509Svid([direct], bundles()).spiffeId.uri).toBe("spiffe://a.org/agent/x");
    expect(validateX509Svid([await leaf(intA), intA.certDer, rootA.certDer], bundles()).serialHex).toMatch(/^[0-9a-f]+$/);
  });

  it("rejects a missing intermediate, an unknown trust domain and a chain longer than 5", async () => {
    const good = await leaf(intA);
    expect(rejection(() => validateX509Svid([good], bundles()))).toContain("not signed by a CA of trust domain a.org");
    const otherDomain = await leaf(intA, { uris: ["spiffe://c.org/x"] });
    expect(rejection(() => validateX509Svid([otherDomain, intA.certDer], bundles()))).toContain("no trust bundle for trust domain c.org");
    expect(rejection(() => validateX509Svid([good, ...Array(5).fill(intA.certDer)], bundles()))).toContain("at most 5");
    expect(rejection(() => validateX509Svid([], bundles()))).toContain("no certificate");
    // A TD-B leaf under TD-A's CA fails even when the whole TD-A chain is presented.
    const forged = await leaf(intA, { uris: ["spiffe://b.org/agent/x"] });
    expect(rejection(() => validateX509Svid([forged, intA.certDer, rootA.certDer], bundles()))).toContain("not signed by a CA of trust domain b.org");
  });

  it("rejects intermediates that may not sign certificates or have expired", async () => {
    const noCertSign = await intermediateCa(rootA, { usage: x509.KeyUsageFlags.digitalSignature });
    const underNoCertSign = await leaf(noCertSign);
    expect(rejection(() => validateX509Svid([underNoCertSign, noCertSign.certDer], bundles()))).toContain("certificate 1 of the chain may not sign certificates");
    const expiring = await intermediateCa(rootA, {});
    const underExpiring = await leaf(expiring);
    expect(validateX509Svid([underExpiring, expiring.certDer], bundles()).spiffeId.uri).toBe("spiffe://a.org/agent/x");
    expect(rejection(() => validateX509Svid([underExpiring, expiring.certDer], bundles(), new Date(Date.now() + 2 * HOUR)))).toContain("expired at");
  });

  it("throws only INVALID_CERTIFICATE on mutated chains (property)", async () => {
    const good = await leaf(intA);
    fc.assert(
      fc.property(fc.nat(good.length - 1), fc.integer({ min: 0, max: 255 }), (i, v) => {
        const copy = Buffer.from(good);
        copy[i] = v;
        try {
          validateX509Svid([copy, intA.certDer], bundles());
          // Every byte is covered by DER structure or the signature: only the original passes.
          expect(copy.equals(good)).toBe(true);
        } catch (error) {
          expect(isMandateError(error, "INVALID_CERTIFICATE"), String(error)).toBe(true);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

const fixtures: Record<string, Buffer> = {};
beforeAll(async () => {
  fixtures.none = await leaf(intA, { uris: [] });
  fixtures.two = await leaf(intA, { uris: ["spiffe://a.org/x", "spiffe://a.org/y"] });
  fixtures.https = await leaf(intA, { uris: ["https://a.org/x"] });
  fixtures.root = await leaf(intA, { uris: ["spiffe://a.org"] });
  fixtures.noUsage = await leaf(intA, { usage: null });
});
