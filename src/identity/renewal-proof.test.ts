import "reflect-metadata";
import { execFile } from "node:child_process";
import { createHmac, generateKeyPairSync, sign } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import fc from "fast-check";
import * as jose from "jose";
import { describe, expect, it } from "vitest";
import { generateKeyAndCsr } from "../agent/csr.js";
import { isMandateError } from "../errors/index.js";
import { parseCsr, verifyCsr } from "./csr.js";
import { MAX_RENEWAL_PROOF_BYTES, RENEWAL_PROOF_TYPE, type RenewalProofClaims, csrDigest, inspectPresentedLeaf, parseRenewalProof, signRenewalProof } from "./renewal-proof.js";
import { pemEncode, x509 } from "./x509-util.js";

const exec = promisify(execFile);
const keys = generateKeyPairSync("ec", { namedCurve: "P-256" });
const LEAF = Buffer.from("308201", "hex"); // the parser does not read the certificate; the server does
const CLAIMS: RenewalProofClaims = {
  aud: "spiffe://mandate.local/mandate/server",
  sub: "spiffe://mandate.local/agent/a",
  iat: 1_800_000_000,
  instance: "inst-0123456789abcdef",
  generation: 3,
  serial: "7f01",
  csr: csrDigest(Buffer.from("csr")),
};

const b64url = (value: unknown) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
const VALID_HEADER = { alg: "ES256", typ: RENEWAL_PROOF_TYPE, x5c: [LEAF.toString("base64")] };

/** A JWS with any header and payload, signed (ES256 over the bytes as given) so only the checks under test can refuse it. */
function token(header: unknown, payload: unknown): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  return `${input}.${sign("sha256", Buffer.from(input), { key: keys.privateKey, dsaEncoding: "ieee-p1363" }).toString("base64url")}`;
}

function refusal(input: unknown): string {
  try {
    parseRenewalProof(input);
  } catch (error) {
    if (isMandateError(error, "PROOF_INVALID")) return error.message;
    throw error;
  }
  throw new Error("accepted");
}

describe("renewal proofs", () => {
  it("round-trips, and an independent JOSE implementation verifies what we sign", async () => {
    const proof = signRenewalProof(keys.privateKey, LEAF, CLAIMS);
    const parsed = parseRenewalProof(proof);
    expect(parsed.claims).toEqual(CLAIMS);
    expect(parsed.leafDer.equals(LEAF)).toBe(true);
    expect(parsed.signature).toHaveLength(64);
    const verified = await jose.compactVerify(proof, keys.publicKey, { algorithms: ["ES256"] });
    expect(JSON.parse(Buffer.from(verified.payload).toString())).toEqual(CLAIMS);
    expect(verified.protectedHeader.typ).toBe(RENEWAL_PROOF_TYPE);
  });

  it("pins ES256: none, HS256, RS256 and ES384 are refused before anything else is read", () => {
    const unsigned = `${b64url({ ...VALID_HEADER, alg: "none" })}.${b64url(CLAIMS)}.`;
    expect(refusal(unsigned)).toMatch(/alg "none" is not accepted|signature/);
    expect(refusal(token({ ...VALID_HEADER, alg: "none" }, CLAIMS))).toContain('alg "none"');
    const hsInput = `${b64url({ ...VALID_HEADER, alg: "HS256" })}.${b64url(CLAIMS)}`;
    const hs = `${hsInput}.${createHmac("sha256", keys.publicKey.export({ type: "spki", format: "der" })).update(hsInput).digest("base64url")}`;
    expect(refusal(hs)).toContain('alg "HS256"');
    expect(refusal(token({ ...VALID_HEADER, alg: "RS256" }, CLAIMS))).toContain('alg "RS256"');
    expect(refusal(token({ ...VALID_HEADER, alg: "ES384" }, CLAIMS))).toContain("only ES256");
  });

  it("refuses header members it does not understand (crit, jwk, kid), another typ, and x5c that is not exactly one certificate", () => {
    expect(refusal(token({ ...VALID_HEADER, crit: ["exp"] }, CLAIMS))).toContain('"crit"');
    expect(refusal(token({ ...VALID_HEADER, jwk: {} }, CLAIMS))).toContain('"jwk"');
    expect(refusal(token({ ...VALID_HEADER, typ: "JWT" }, CLAIMS))).toContain("typ");
    expect(refusal(token({ alg: "ES256", typ: RENEWAL_PROOF_TYPE }, CLAIMS))).toContain("lacks x5c");
    expect(refusal(token({ ...VALID_HEADER, x5c: [] }, CLAIMS))).toContain("x5c");
    expect(refusal(token({ ...VALID_HEADER, x5c: [LEAF.toString("base64"), LEAF.toString("base64")] }, CLAIMS))).toContain("x5c");
    expect(refusal(token({ ...VALID_HEADER, x5c: [LEAF.toString("base64url") + "_"] }, CLAIMS))).toContain("x5c[0]");
  });

  it("refuses claims that are missing, extra or of the wrong form", () => {
    const { csr: _csr, ...noCsr } = CLAIMS;
    expect(refusal(token(VALID_HEADER, noCsr))).toContain("lacks csr");
    expect(refusal(token(VALID_HEADER, { ...CLAIMS, exp: 1 }))).toContain('"exp"');
    expect(refusal(token(VALID_HEADER, { ...CLAIMS, generation: 0 }))).toContain("generation");
    expect(refusal(token(VALID_HEADER, { ...CLAIMS, generation: "3" }))).toContain("generation");
    expect(refusal(token(VALID_HEADER, { ...CLAIMS, iat: 1.5 }))).toContain("iat");
    expect(refusal(token(VALID_HEADER, { ...CLAIMS, serial: "7F01" }))).toContain("serial");
    expect(refusal(token(VALID_HEADER, { ...CLAIMS, csr: "abc" }))).toContain("csr");
    expect(refusal(token(VALID_HEADER, { ...CLAIMS, instance: "../x" }))).toContain("instance");
    expect(refusal(token(VALID_HEADER, { ...CLAIMS, aud: "" }))).toContain("aud");
    expect(refusal(token(VALID_HEADER, [CLAIMS]))).toContain("not a JSON object");
  });

  it("refuses malformed compact forms: not a string, too long, wrong part count, non-canonical base64url, a DER signature", () => {
    const good = signRenewalProof(keys.privateKey, LEAF, CLAIMS);
    const [h, p, s] = good.split(".") as [string, string, string];
    expect(refusal(undefined)).toContain("compact JWS string");
    expect(refusal({ proof: good })).toContain("compact JWS string");
    expect(refusal("a".repeat(MAX_RENEWAL_PROOF_BYTES + 1))).toContain("larger than");
    expect(refusal(`${h}.${p}`)).toContain("three");
    expect(refusal(`${h}.${p}.${s}.x`)).toContain("three");
    expect(refusal(`${h}=.${p}.${s}`)).toContain("base64url");
    expect(refusal(`${h}.${p}.${Buffer.from(s, "base64url").toString("base64")}`)).toMatch(/base64url/);
    const der = sign("sha256", Buffer.from(`${h}.${p}`), keys.privateKey).toString("base64url");
    expect(refusal(`${h}.${p}.${der}`)).toContain("64 bytes");
  });

  it("property: any string is either parsed or refused with PROOF_INVALID, never another error", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.stringMatching(/^[A-Za-z0-9_.-]{0,200}$/)), (text) => {
        try {
          parseRenewalProof(text);
        } catch (error) {
          expect(isMandateError(error, "PROOF_INVALID")).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("property: any JSON header and payload are either exactly a well-formed proof or refused with PROOF_INVALID", () => {
    const claimValue = fc.oneof(fc.string({ maxLength: 50 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 2 }));
    const claims = fc.record(
      { aud: claimValue, sub: claimValue, iat: claimValue, instance: claimValue, generation: claimValue, serial: claimValue, csr: claimValue, extra: claimValue },
      { requiredKeys: [] },
    );
    const header = fc.record({ alg: fc.constantFrom("ES256", "none", "HS256", "es256"), typ: fc.constantFrom(RENEWAL_PROOF_TYPE, "JWT"), x5c: fc.oneof(fc.constant(VALID_HEADER.x5c), fc.array(fc.string(), { maxLength: 2 })) }, { requiredKeys: [] });
    fc.assert(
      // Canonical base64 leaves other than the real one (fast-check found "/+//") are part of the space.
      fc.property(header, fc.oneof(claims, fc.constant(CLAIMS)), (h, c) => {
        let parsed;
        try {
          parsed = parseRenewalProof(token(h, c));
        } catch (error) {
          expect(isMandateError(error, "PROOF_INVALID")).toBe(true);
          return;
        }
        // Parsing checks the header's form; whether x5c[0] is a certificate of the trust domain is the
        // verifier's check (inspectPresentedLeaf and the chain), so any canonical base64 leaf may pass here.
        expect(h).toEqual({ ...VALID_HEADER, x5c: h.x5c });
        expect(h.x5c).toHaveLength(1);
        expect(parsed.leafDer.toString("base64")).toBe(h.x5c![0]);
        expect(parsed.claims).toEqual(c);
        // …and a leaf that is not a certificate goes no further than that check.
        if (!parsed.leafDer.equals(LEAF)) expect(() => inspectPresentedLeaf(parsed.leafDer)).toThrow(expect.objectContaining({ code: "PROOF_INVALID" }));
      }),
      { numRuns: 1000, examples: [[{ alg: "ES256", typ: RENEWAL_PROOF_TYPE, x5c: ["/+//"] }, CLAIMS]] },
    );
  });

  it("property: well-formed claims round-trip exactly, and flipping any character of the proof never yields the same claims with a changed signing input", () => {
    const claims = fc.record({
      aud: fc.string({ minLength: 1, maxLength: 100 }),
      sub: fc.string({ minLength: 1, maxLength: 100 }),
      iat: fc.nat(),
      instance: fc.stringMatching(/^[A-Za-z0-9._-]{1,40}$/),
      generation: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
      serial: fc.stringMatching(/^[0-9a-f]{1,40}$/),
      csr: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => csrDigest(b)),
    });
    fc.assert(
      fc.property(claims, fc.nat(), (c, position) => {
        const proof = signRenewalProof(keys.privateKey, LEAF, c);
        const original = parseRenewalProof(proof);
        expect(original.claims).toEqual(c);
        const i = position % proof.length;
        const flipped = proof.slice(0, i) + (proof[i] === "A" ? "B" : "A") + proof.slice(i + 1);
        try {
          const parsed = parseRenewalProof(flipped);
          // Anything that still parses differs in what the signature covers or in the signature itself.
          expect(parsed.signingInput.equals(original.signingInput) && parsed.signature.equals(original.signature)).toBe(false);
        } catch (error) {
          expect(isMandateError(error, "PROOF_INVALID")).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe("the agent's CSR", () => {
  it("is a PKCS#10 request that our parser, the certificate library and openssl all accept and verify", async () => {
    const { csrPem, csrDer, privateKey } = await generateKeyAndCsr();
    expect(pemEncode("CERTIFICATE REQUEST", csrDer)).toBe(csrPem);
    const parsed = parseCsr(csrPem);
    await verifyCsr(parsed);
    expect(parsed.keyAlgorithm).toBe("ec-p256");
    expect(parsed.uriSans).toEqual([]);
    const library = new x509.Pkcs10CertificateRequest(csrPem);
    expect(await library.verify()).toBe(true);
    expect(library.subject).toBe("CN=mandate-agent");
    expect(privateKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    const work = await mkdtemp(join(tmpdir(), "mandate-agent-csr-"));
    try {
      await writeFile(join(work, "req.pem"), csrPem);
      const { stderr } = await exec("openssl", ["req", "-in", join(work, "req.pem"), "-noout", "-verify"]);
      expect(stderr + "").toMatch(/verify OK|Certificate request self-signature verify OK/);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });
});
