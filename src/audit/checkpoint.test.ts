import { type KeyObject, createHash, createPrivateKey, sign } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MandateError, isMandateError } from "../errors/index.js";
import {
  type Checkpoint,
  auditSigningKeyFromPrivateKey,
  createAuditSigningKey,
  formatCheckpointBody,
  parseVerifierKey,
  signCheckpoint,
  signNote,
  verifyCheckpoint,
  verifyNote,
} from "./checkpoint.js";
import { EMPTY_TREE_HASH, leafHash, treeHash } from "./merkle.js";

const ORIGIN = "audit.example.org/mandate";
const key = createAuditSigningKey(ORIGIN);
const otherKey = createAuditSigningKey(ORIGIN);
const witness = createAuditSigningKey("witness.example.net/w1");
const root = treeHash(Array.from({ length: 5 }, (_, i) => leafHash(Buffer.from(`e${i}`))));
const checkpoint: Checkpoint = { origin: ORIGIN, treeSize: 5, rootHash: root };

function ed25519FromSeed(seed: Buffer): KeyObject {
  // PKCS#8 wrapping of a raw Ed25519 seed (RFC 8410).
  const prefix = Buffer.from("302e020100300506032b657004220420", "hex");
  return createPrivateKey({ key: Buffer.concat([prefix, seed]), format: "der", type: "pkcs8" });
}

/** Same bytes, different text: sets one of the unused low bits of the last base64 digit. */
function nonCanonical(b64: string): string {
  const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const at = b64.replace(/=+$/, "").length - 1;
  const changed = b64.slice(0, at) + digits[digits.indexOf(b64[at]!) ^ 1]! + b64.slice(at + 1);
  if (!Buffer.from(changed, "base64").equals(Buffer.from(b64, "base64"))) throw new Error("not a padding-bit change");
  return changed;
}

function reasonOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (!(e instanceof MandateError)) throw e;
    return e.details?.reason as string | undefined;
  }
  throw new Error("expected a MandateError");
}

function codeAndReason(f: () => unknown): [string, unknown] {
  try {
    f();
  } catch (e) {
    if (!(e instanceof MandateError)) throw e;
    return [e.code, e.details?.reason];
  }
  throw new Error("expected a MandateError");
}

describe("round trip", () => {
  it("signs and verifies a checkpoint", () => {
    const body = formatCheckpointBody(checkpoint);
    expect(body).toBe(`${ORIGIN}\n5\n${root.toString("base64")}\n`);
    const note = signCheckpoint(body, key);
    expect(note.startsWith(`${body}\n\u2014 ${ORIGIN} `)).toBe(true);
    expect(note.endsWith("\n")).toBe(true);
    expect(verifyCheckpoint(note, key.verifierKey)).toEqual(checkpoint);
    expect(verifyCheckpoint(Buffer.from(note), parseVerifierKey(key.verifierKey), { origin: ORIGIN })).toEqual(checkpoint);
  });

  it("round-trips the empty tree and extension lines", () => {
    const empty: Checkpoint = { origin: ORIGIN, treeSize: 0, rootHash: EMPTY_TREE_HASH };
    expect(verifyCheckpoint(signCheckpoint(formatCheckpointBody(empty), key), key.verifierKey)).toEqual(empty);
    const extended: Checkpoint = { ...checkpoint, extensions: ["ext one", "— not a signature"] };
    expect(verifyCheckpoint(signCheckpoint(formatCheckpointBody(extended), key), key.verifierKey)).toEqual(extended);
  });

  it("accepts a note cosigned by a witness, in either order, and ignores unknown keys", () => {
    const body = formatCheckpointBody(checkpoint);
    const mine = signCheckpoint(body, key);
    const theirs = signCheckpoint(body, witness);
    const line = (note: string): string => note.slice(body.length + 1);
    for (const note of [`${body}\n${line(mine)}${line(theirs)}`, `${body}\n${line(theirs)}${line(mine)}`]) {
      expect(verifyCheckpoint(note, key.verifierKey)).toEqual(checkpoint);
      expect(verifyCheckpoint(note, witness.verifierKey)).toEqual(checkpoint);
    }
  });

  it("rebuilds the same key from a stored private key", () => {
    const again = auditSigningKeyFromPrivateKey(ORIGIN, key.privateKey);
    expect(again.verifierKey).toBe(key.verifierKey);
    expect(() => auditSigningKeyFromPrivateKey(ORIGIN, key.publicKey)).toThrow(/Ed25519 private key/);
  });
});

describe("wire format known answers", () => {
  it("lays out the key id and signature line exactly as the signed-note spec defines", () => {
    const body = formatCheckpointBody(checkpoint);
    const raw = Buffer.from(key.publicKey.export({ format: "jwk" }).x!, "base64url");
    // key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]
    const id = createHash("sha256").update(Buffer.concat([Buffer.from(ORIGIN), Buffer.from([0x0a, 0x01]), raw])).digest().subarray(0, 4);
    // Ed25519 is deterministic, so the whole note can be rebuilt byte for byte.
    const signature = sign(null, Buffer.from(body), key.privateKey);
    const expected = `${body}\n\u2014 ${ORIGIN} ${Buffer.concat([id, signature]).toString("base64")}\n`;
    expect(signCheckpoint(body, key)).toBe(expected);
    expect(key.verifierKey).toBe(`${ORIGIN}+${id.toString("hex")}+${Buffer.concat([Buffer.from([0x01]), raw]).toString("base64")}`);
    const parsed = parseVerifierKey(key.verifierKey);
    expect(parsed.name).toBe(ORIGIN);
    expect(parsed.keyId).toBe(id.readUInt32BE(0));
    expect(parsed.rawPublicKey).toEqual(raw);
  });

  // The example key pair and note published with the reference Go implementation of signed notes.
  const GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
  const GO_SKEY_MATERIAL = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
  const GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
  const GO_SIG = "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

  it("interoperates with the reference implementation's published key and note", () => {
    const material = Buffer.from(GO_SKEY_MATERIAL, "base64");
    expect(material[0]).toBe(0x01);
    const peter = auditSigningKeyFromPrivateKey("PeterNeumann", ed25519FromSeed(material.subarray(1)));
    expect(peter.verifierKey).toBe(GO_VKEY);
    expect(signNote(GO_TEXT, peter)).toBe(`${GO_TEXT}\n${GO_SIG}`);
    expect(verifyNote(`${GO_TEXT}\n${GO_SIG}`, GO_VKEY)).toBe(GO_TEXT);
    expect(reasonOf(() => verifyNote(`${GO_TEXT.replace("cryptography", "cryptographY")}\n${GO_SIG}`, GO_VKEY))).toBe("bad_signature");
    // Not a checkpoint body, so the checkpoint layer refuses it even though the signature is good.
    expect(reasonOf(() => verifyCheckpoint(`${GO_TEXT}\n${GO_SIG}`, GO_VKEY))).toBe("malformed_body");
  });

  it("parses the spec's example checkpoint and reports whose signature it carries", () => {
    const example =
      "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n" +
      "\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
    try {
      verifyCheckpoint(example, key.verifierKey);
      expect.unreachable();
    } catch (e) {
      expect(isMandateError(e, "MALFORMED_REQUEST")).toBe(true);
      expect((e as MandateError).details?.reason).toBe("no_trusted_signature");
      expect((e as MandateError).message).toContain("example.com/behind-the-sofa+033de0ae");
    }
  });
});

describe("tampering and untrusted signers", () => {
  const body = formatCheckpointBody(checkpoint);
  const note = signCheckpoint(body, key);

  it("rejects a changed origin, size, root or signature", () => {
    const otherRoot = Buffer.from(root);
    otherRoot[0]! ^= 1;
    const tampered = [
      note.replace(ORIGIN, "audit.example.org/other"),
      note.replace("\n5\n", "\n6\n"),
      note.replace(root.toString("base64"), otherRoot.toString("base64")),
    ];
    for (const t of tampered) expect(reasonOf(() => verifyCheckpoint(t, key.verifierKey))).toBe("bad_signature");

    const lineStart = body.length + 1;
    const sigB64 = note.slice(note.lastIndexOf(" ") + 1, -1);
    const sig = Buffer.from(sigB64, "base64");
    for (const index of [4, 20, sig.length - 1]) {
      const bad = Buffer.from(sig);
      bad[index]! ^= 0x80;
      const forged = `${note.slice(0, note.lastIndexOf(" ") + 1)}${bad.toString("base64")}\n`;
      expect(reasonOf(() => verifyCheckpoint(forged, key.verifierKey))).toBe("bad_signature");
    }
    // Changing the key id byte turns our signature into an unknown key's, leaving nothing trusted.
    const idFlipped = Buffer.from(sig);
    idFlipped[0]! ^= 1;
    expect(reasonOf(() => verifyCheckpoint(`${note.slice(0, note.lastIndexOf(" ") + 1)}${idFlipped.toString("base64")}\n`, key.verifierKey))).toBe("no_trusted_signature");
    expect(reasonOf(() => verifyCheckpoint(note.slice(0, lineStart) + note.slice(lineStart).replace(ORIGIN, "x.example"), key.verifierKey))).toBe("no_trusted_signature");
  });

  it("rejects a note signed by another key, even one with the same name", () => {
    const byOther = signCheckpoint(body, otherKey);
    expect(codeAndReason(() => verifyCheckpoint(byOther, key.verifierKey))).toEqual(["MALFORMED_REQUEST", "no_trusted_signature"]);
    expect(reasonOf(() => verifyCheckpoint(signCheckpoint(body, witness), key.verifierKey))).toBe("no_trusted_signature");
    // A verifier configured with the right name and id but another public key must still refuse.
    const impostor = { ...parseVerifierKey(key.verifierKey), publicKey: otherKey.publicKey };
    expect(reasonOf(() => verifyCheckpoint(note, impostor))).toBe("bad_signature");
  });

  it("rejects a failing signature from the trusted key even when another copy verifies", () => {
    const sigLine = note.slice(body.length + 1);
    const forgedLine = signCheckpoint(body.replace("\n5\n", "\n6\n"), key).slice(body.length + 1);
    expect(reasonOf(() => verifyCheckpoint(`${body}\n${sigLine}${forgedLine}`, key.verifierKey))).toBe("bad_signature");
  });

  it("checks the expected origin", () => {
    const elsewhere = signCheckpoint(formatCheckpointBody({ ...checkpoint, origin: "other.example/log" }), key);
    expect(reasonOf(() => verifyCheckpoint(elsewhere, key.verifierKey, { origin: ORIGIN }))).toBe("origin_mismatch");
  });
});

describe("malformed input", () => {
  const signedBody = (text: string): string => signNote(text, key);
  const rootB64 = root.toString("base64");

  it("names what is wrong with a signed but malformed body", () => {
    const cases: Array<[string, string, RegExp]> = [
      [`${ORIGIN}\n5\n`, "malformed_body", /found 2 line/],
      [`\n5\n${rootB64}\n`, "malformed_body", /origin line is empty/],
      [`${ORIGIN}\n05\n${rootB64}\n`, "malformed_body", /leading zeros/],
      [`${ORIGIN}\n-5\n${rootB64}\n`, "malformed_body", /not a decimal/],
      [`${ORIGIN}\n5 \n${rootB64}\n`, "malformed_body", /not a decimal/],
      [`${ORIGIN}\n9223372036854775808\n${rootB64}\n`, "tree_size_out_of_range", /2\^63-1/],
      [`${ORIGIN}\n9007199254740992\n${rootB64}\n`, "tree_size_out_of_range", /2\^53-1/],
      [`${ORIGIN}\n5\n${rootB64.slice(0, -4)}\n`, "malformed_body", /expected 32/],
      [`${ORIGIN}\n5\n${rootB64.replace("=", "")}\n`, "malformed_body", /canonical base64/],
      [`${ORIGIN}\n5\n${Buffer.concat([root, Buffer.from([1])]).toString("base64")}\n`, "malformed_body", /33 bytes, expected 32/],
      [`${ORIGIN}\n5\n${rootB64.replace(/.$/, "")}\n`, "malformed_body", /canonical base64/],
      [`${ORIGIN}\n5\n${root.toString("base64url")}\n`, "malformed_body", /canonical base64/],
      [`${ORIGIN}\n5\n${nonCanonical(rootB64)}\n`, "malformed_body", /canonical base64/],
      [`${ORIGIN}\n5\n${rootB64}\n\next\n`, "malformed_body", /extension line 1 is empty/],
    ];
    for (const [text, reason, message] of cases) {
      try {
        verifyCheckpoint(signedBody(text), key.verifierKey);
        expect.unreachable(text);
      } catch (e) {
        expect(isMandateError(e, "MALFORMED_REQUEST"), text).toBe(true);
        expect((e as MandateError).details?.reason, text).toBe(reason);
        expect((e as MandateError).message, text).toMatch(message);
      }
    }
    // The largest exactly representable size is accepted.
    expect(verifyCheckpoint(signedBody(`${ORIGIN}\n9007199254740991\n${rootB64}\n`), key.verifierKey).treeSize).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("refuses to sign or format a malformed checkpoint", () => {
    expect(() => signCheckpoint(`${ORIGIN}\n05\n${rootB64}\n`, key)).toThrow(/refusing to sign/);
    expect(() => formatCheckpointBody({ ...checkpoint, origin: "" })).toThrow(/origin/);
    expect(() => formatCheckpointBody({ ...checkpoint, origin: "a\nb" })).toThrow(/origin/);
    expect(() => formatCheckpointBody({ ...checkpoint, treeSize: -1 })).toThrow(/tree size/);
    expect(() => formatCheckpointBody({ ...checkpoint, treeSize: 1.5 })).toThrow(/tree size/);
    expect(() => formatCheckpointBody({ ...checkpoint, rootHash: Buffer.alloc(31) })).toThrow(/32 bytes/);
    expect(() => formatCheckpointBody({ ...checkpoint, extensions: [""] })).toThrow(/extension/);
    expect(() => createAuditSigningKey("has space")).toThrow(/key name/);
    expect(() => createAuditSigningKey("has+plus")).toThrow(/key name/);
    expect(() => createAuditSigningKey("")).toThrow(/key name/);
  });

  it("names what is wrong with the note envelope", () => {
    const note = signCheckpoint(formatCheckpointBody(checkpoint), key);
    const sigLine = note.slice(note.indexOf("\n\n") + 2);
    const cases: Array<[string | Uint8Array, string]> = [
      [note.slice(0, -1), "missing_final_newline"],
      [formatCheckpointBody(checkpoint), "no_signature_block"],
      [`${note}\n`, "no_signature_block"],
      [note.replace("\u2014", "-"), "malformed_signature_line"],
      [note.replace(`\u2014 ${ORIGIN} `, `\u2014 ${ORIGIN}`), "malformed_signature_line"],
      [note.replace(`\u2014 ${ORIGIN} `, "\u2014 a+b "), "malformed_signature_line"],
      [`${note.slice(0, -2)}!\n`, "malformed_signature_line"],
      [note.replace(sigLine, "\u2014 k AAAA\n"), "malformed_signature_line"],
      [note.replace("\n5\n", "\n5\t\n"), "control_character"],
      [note.replace("\n5\n", "\n5\r\n"), "control_character"],
      [note.replace("\n5\n", "\n5\ud800\n"), "not_utf8"],
      [Buffer.concat([Buffer.from(note), Buffer.from([0xff])]), "not_utf8"],
      [`${formatCheckpointBody(checkpoint)}\n${sigLine.repeat(101)}`, "too_many_signatures"],
      [`${"x".repeat(1 << 20)}\n\n${sigLine}`, "too_large"],
    ];
    for (const [text, reason] of cases) expect(reasonOf(() => verifyCheckpoint(text, key.verifierKey)), String(text).slice(0, 80)).toBe(reason);
    // The spec's minimum of 16 signatures is accepted.
    const many = `${formatCheckpointBody(checkpoint)}\n${signCheckpoint(formatCheckpointBody(checkpoint), witness).slice(formatCheckpointBody(checkpoint).length + 1).repeat(15)}${sigLine}`;
    expect(verifyCheckpoint(many, key.verifierKey)).toEqual(checkpoint);
  });

  it("rejects malformed verifier keys with INVALID_ARGUMENT", () => {
    const [name, id, material] = [ORIGIN, key.verifierKey.split("+")[1]!, key.verifierKey.slice(key.verifierKey.indexOf("+", ORIGIN.length + 1) + 1)];
    const bad = [
      "",
      name,
      `${name}+${id}`,
      `${name}+${id.slice(1)}+${material}`,
      `${name}+${id}0+${material}`,
      `${name}+zzzzzzzz+${material}`,
      `${name}+${id}+${material.slice(0, -1)}`,
      `${name}+${id}+${material}AAAA`,
      `other.example+${id}+${material}`,
      `${name}+${id}+${Buffer.concat([Buffer.from([0x02]), Buffer.from(material, "base64").subarray(1)]).toString("base64")}`,
      `+${id}+${material}`,
      `${name}+${id}+${material.slice(0, -4)}AA==`,
    ];
    for (const k of bad) expect(codeAndReason(() => parseVerifierKey(k))[0], k).toBe("INVALID_ARGUMENT");
    // Every single-character corruption of a valid key is refused or, at worst, names a different key.
    const vk = key.verifierKey;
    for (let i = 0; i < vk.length; i++) {
      const mangled = vk.slice(0, i) + String.fromCharCode(vk.charCodeAt(i) + 1) + vk.slice(i + 1);
      expect(() => parseVerifierKey(mangled), mangled).toThrow(MandateError);
    }
  });
});

describe("hostile input never escapes as anything but MandateError", () => {
  const note = signCheckpoint(formatCheckpointBody(checkpoint), key);
  const alphabet = fc.constantFrom(..."\n\u2014 +/=0123456789abcAZ\t\r\u0000\ud800é".split(""), "\n\n", "\u2014 ");
  const noteLike = fc.array(alphabet, { maxLength: 120 }).map((a) => a.join(""));

  const onlyMandateErrors = (f: () => unknown): void => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(MandateError);
    }
  };

  it("for random text as a note or a verifier key", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary", maxLength: 300 }), noteLike), (text) => {
        onlyMandateErrors(() => verifyCheckpoint(text, key.verifierKey));
        onlyMandateErrors(() => verifyCheckpoint(Buffer.from(text), key.verifierKey));
        onlyMandateErrors(() => parseVerifierKey(text));
        onlyMandateErrors(() => verifyCheckpoint(note, text));
      }),
      { numRuns: 500 },
    );
  });

  it("for random bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        onlyMandateErrors(() => verifyCheckpoint(bytes, key.verifierKey));
      }),
      { numRuns: 300 },
    );
  });

  it("for any single edit of a valid note: it verifies unchanged or fails with MandateError", () => {
    fc.assert(
      fc.property(fc.nat(), fc.nat({ max: 3 }), fc.oneof(alphabet, fc.string({ unit: "binary", maxLength: 3 })), (pos, del, insert) => {
        const at = pos % (note.length + 1);
        const edited = note.slice(0, at) + insert + note.slice(at + del);
        try {
          const got = verifyCheckpoint(edited, key.verifierKey);
          // Only an edit that leaves the signed bytes intact may still verify.
          expect(got).toEqual(checkpoint);
          expect(edited.startsWith(formatCheckpointBody(checkpoint))).toBe(true);
        } catch (e) {
          expect(e).toBeInstanceOf(MandateError);
        }
      }),
      { numRuns: 500 },
    );
  });
});
