/**
 * Signed audit checkpoints in the C2SP formats (c2sp.org/signed-note and
 * c2sp.org/tlog-checkpoint) with Ed25519 keys, so that transparency-log
 * tooling outside Mandate can check a checkpoint with nothing but the
 * verifier key string.
 *
 * Parsing is strict and every rejection is a MandateError whose
 * `details.reason` says what was wrong, because `mandate audit verify` must
 * tell an operator exactly why a checkpoint was refused.
 */
import { type KeyObject, createHash, createPublicKey, generateKeyPairSync, sign, verify } from "node:crypto";
import { MandateError } from "../errors/index.js";
import { HASH_SIZE } from "./merkle.js";

/** The signed-note signature type byte assigned to Ed25519. */
const ED25519_TYPE = 0x01;
const ED25519_PUBLIC_KEY_SIZE = 32;
const ED25519_SIGNATURE_SIZE = 64;
const KEY_ID_SIZE = 4;
const EM_DASH_PREFIX = "\u2014 ";

/** The spec requires accepting at least 16; the cap bounds work on hostile input. */
export const MAX_NOTE_SIGNATURES = 100;
/** Generous for many signatures (post-quantum ones approach 5 kB each) while bounding memory. */
export const MAX_NOTE_BYTES = 1 << 20;

/** 2^63 - 1: sizes are int64 in every store and in the reference tooling. */
const MAX_TREE_SIZE_INT64 = (1n << 63n) - 1n;

export interface AuditSigningKey {
  name: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** `<name>+<hex key id>+<base64(0x01 || public key)>`, the form verifiers are configured with. */
  verifierKey: string;
}

export interface AuditVerifierKey {
  name: string;
  /** The 4-byte key id as an unsigned 32-bit integer. */
  keyId: number;
  publicKey: KeyObject;
  /** The 32-byte Ed25519 public key. */
  rawPublicKey: Buffer;
}

export interface Checkpoint {
  origin: string;
  treeSize: number;
  rootHash: Buffer;
  /** Opaque lines after the root hash; the spec discourages them, so they are usually absent. */
  extensions?: string[];
}

export type CheckpointErrorReason =
  | "not_text"
  | "too_large"
  | "not_utf8"
  | "control_character"
  | "missing_final_newline"
  | "no_signature_block"
  | "malformed_signature_line"
  | "too_many_signatures"
  | "no_trusted_signature"
  | "bad_signature"
  | "malformed_body"
  | "tree_size_out_of_range"
  | "origin_mismatch";

export function createAuditSigningKey(name: string): AuditSigningKey {
  checkKeyName(name);
  const { privateKey } = generateKeyPairSync("ed25519");
  return auditSigningKeyFromPrivateKey(name, privateKey);
}

/** Rebuilds the signing key from a stored Ed25519 private key (the name is part of the key's identity). */
export function auditSigningKeyFromPrivateKey(name: string, privateKey: KeyObject): AuditSigningKey {
  checkKeyName(name);
  if (privateKey?.type !== "private" || privateKey.asymmetricKeyType !== "ed25519") {
    throw new MandateError("INVALID_ARGUMENT", "an audit signing key must be an Ed25519 private key");
  }
  const publicKey = createPublicKey(privateKey);
  const raw = rawEd25519PublicKey(publicKey);
  const verifierKey = `${name}+${keyIdHex(keyId(name, raw))}+${Buffer.concat([Buffer.from([ED25519_TYPE]), raw]).toString("base64")}`;
  return { name, privateKey, publicKey, verifierKey };
}

/** Parses `<name>+<8 hex digits>+<base64(0x01 || 32-byte key)>` and checks the id really belongs to the key. */
export function parseVerifierKey(text: string): AuditVerifierKey {
  const bad = (why: string): MandateError => new MandateError("INVALID_ARGUMENT", `invalid audit verifier key: ${why}`);
  if (typeof text !== "string") throw bad("it must be a string");
  const trimmed = text.trim();
  // The name cannot contain "+" and the id is fixed-width, so only the key material may hold further "+".
  const first = trimmed.indexOf("+");
  const second = first < 0 ? -1 : trimmed.indexOf("+", first + 1);
  if (first < 0 || second < 0) throw bad("expected <name>+<key id>+<key>");
  const name = trimmed.slice(0, first);
  const idText = trimmed.slice(first + 1, second);
  const keyText = trimmed.slice(second + 1);
  if (!isValidKeyName(name)) throw bad("the key name must be non-empty without spaces, control characters or '+'");
  if (!/^[0-9a-fA-F]{8}$/.test(idText)) throw bad("the key id must be 8 hexadecimal digits");
  const material = decodeBase64Strict(keyText);
  if (material === undefined) throw bad("the key is not canonical base64");
  if (material.length === 0 || material[0] !== ED25519_TYPE) throw bad("only Ed25519 keys (type 0x01) are supported");
  if (material.length !== 1 + ED25519_PUBLIC_KEY_SIZE) throw bad(`an Ed25519 key is ${ED25519_PUBLIC_KEY_SIZE} bytes`);
  const rawPublicKey = Buffer.from(material.subarray(1));
  const id = Number.parseInt(idText, 16);
  if (id !== keyId(name, rawPublicKey)) throw bad("the key id does not match the name and key");
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: rawPublicKey.toString("base64url") }, format: "jwk" });
  } catch (cause) {
    throw new MandateError("INVALID_ARGUMENT", "invalid audit verifier key: not an Ed25519 public key", { cause });
  }
  return { name, keyId: id, publicKey, rawPublicKey };
}

/** The note text of a checkpoint: origin, size and root, each on its own line, then any extension lines. */
export function formatCheckpointBody(checkpoint: Checkpoint): string {
  const { origin, treeSize, rootHash, extensions = [] } = checkpoint ?? ({} as Checkpoint);
  const bad = (why: string): MandateError => new MandateError("INVALID_ARGUMENT", `cannot format checkpoint: ${why}`);
  if (typeof origin !== "string" || !isValidLine(origin)) throw bad("the origin must be a non-empty line without control characters");
  if (!Number.isSafeInteger(treeSize) || treeSize < 0) throw bad("the tree size must be a non-negative safe integer");
  if (!(rootHash instanceof Uint8Array) || rootHash.length !== HASH_SIZE) throw bad(`the root hash must be ${HASH_SIZE} bytes`);
  if (!Array.isArray(extensions) || !extensions.every((e) => typeof e === "string" && isValidLine(e))) {
    throw bad("extension lines must be non-empty lines without control characters");
  }
  const lines = [origin, String(treeSize), Buffer.from(rootHash).toString("base64"), ...extensions];
  return lines.map((l) => `${l}\n`).join("");
}

/** Signs a checkpoint body, refusing to sign anything that a verifier would then reject as malformed. */
export function signCheckpoint(body: string, key: AuditSigningKey): string {
  try {
    parseCheckpointBody(body);
  } catch (e) {
    if (e instanceof MandateError) throw new MandateError("INVALID_ARGUMENT", `refusing to sign: ${e.message}`, { cause: e });
    throw e;
  }
  return signNote(body, key);
}

/**
 * Verifies the note's signature by `verifierKey` and only then parses the body,
 * because the spec forbids acting on note text that has not been verified.
 */
export function verifyCheckpoint(
  noteText: string | Uint8Array,
  verifierKey: string | AuditVerifierKey,
  options: { origin?: string } = {},
): Checkpoint {
  const text = verifyNote(noteText, verifierKey);
  const checkpoint = parseCheckpointBody(text);
  if (options.origin !== undefined && checkpoint.origin !== options.origin) {
    throw noteError("origin_mismatch", `checkpoint origin "${checkpoint.origin}" is not the expected "${options.origin}"`);
  }
  return checkpoint;
}

/** Adds this key's signature to arbitrary note text (a generic signed note, not only a checkpoint). */
export function signNote(text: string, key: AuditSigningKey): string {
  if (typeof text !== "string" || !text.endsWith("\n")) {
    throw new MandateError("INVALID_ARGUMENT", "note text must end with a newline");
  }
  const problem = textProblem(text);
  if (problem) throw new MandateError("INVALID_ARGUMENT", `note text ${problem.message}`);
  const signing = auditSigningKeyFromPrivateKey(key.name, key.privateKey);
  const raw = rawEd25519PublicKey(signing.publicKey);
  const signature = sign(null, Buffer.from(text, "utf8"), key.privateKey);
  const id = Buffer.alloc(KEY_ID_SIZE);
  id.writeUInt32BE(keyId(key.name, raw));
  return `${text}\n${EM_DASH_PREFIX}${key.name} ${Buffer.concat([id, signature]).toString("base64")}\n`;
}

/**
 * Returns the note text once a signature by `verifierKey` verifies. Signatures
 * from other keys are ignored, as the spec requires, so witnesses can cosign;
 * a failing signature from this key rejects the whole note.
 */
export function verifyNote(noteText: string | Uint8Array, verifierKey: string | AuditVerifierKey): string {
  const key = typeof verifierKey === "string" ? parseVerifierKey(verifierKey) : verifierKey;
  const note = decodeNote(noteText);
  // The text ends at the last blank line: the text itself may contain blank lines, signatures never do.
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw noteError("no_signature_block", "note has no blank line separating the text from signature lines");
  const text = note.slice(0, split + 1);
  const sigLines = note.slice(split + 2).split("\n");
  sigLines.pop(); // The note ends with "\n", so the last element is the empty remainder.
  if (sigLines.length === 0) throw noteError("no_signature_block", "note has no signature lines after the blank line");
  if (sigLines.length > MAX_NOTE_SIGNATURES) {
    throw noteError("too_many_signatures", `note has ${sigLines.length} signature lines; at most ${MAX_NOTE_SIGNATURES} are accepted`);
  }

  const message = Buffer.from(text, "utf8");
  const seen: string[] = [];
  let verified = false;
  for (const [i, line] of sigLines.entries()) {
    const sig = parseSignatureLine(line, i + 1);
    seen.push(`${sig.name}+${keyIdHex(sig.keyId)}`);
    if (sig.name !== key.name || sig.keyId !== key.keyId) continue;
    if (!ed25519Verify(message, key.publicKey, sig.signature)) {
      throw noteError("bad_signature", `signature line ${i + 1} by ${key.name}+${keyIdHex(key.keyId)} does not verify: the note was altered or signed by a different key`);
    }
    verified = true;
  }
  if (!verified) {
    throw noteError(
      "no_trusted_signature",
      `note has no signature by ${key.name}+${keyIdHex(key.keyId)} (signed by: ${seen.join(", ")})`,
    );
  }
  return text;
}

function parseCheckpointBody(text: string): Checkpoint {
  const bad = (why: string, reason: CheckpointErrorReason = "malformed_body"): MandateError =>
    noteError(reason, `malformed checkpoint: ${why}`);
  if (typeof text !== "string") throw bad("the body must be text");
  if (!text.endsWith("\n")) throw bad("the body must end with a newline");
  const problem = textProblem(text);
  if (problem) throw bad(problem.message, problem.reason);
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw bad(`expected origin, tree size and root hash lines, found ${lines.length} line(s)`);
  const [origin, sizeText, rootText, ...extensions] = lines as [string, string, string, ...string[]];
  if (origin === "") throw bad("the origin line is empty");
  if (!/^(0|[1-9][0-9]*)$/.test(sizeText)) throw bad(`the tree size "${truncate(sizeText)}" is not a decimal number without leading zeros`);
  const size = BigInt(sizeText);
  if (size > MAX_TREE_SIZE_INT64) throw bad(`the tree size ${truncate(sizeText)} exceeds 2^63-1`, "tree_size_out_of_range");
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw bad(`the tree size ${sizeText} exceeds 2^53-1, the largest size this verifier represents exactly`, "tree_size_out_of_range");
  }
  const rootHash = decodeBase64Strict(rootText);
  if (rootHash === undefined) throw bad("the root hash is not canonical base64");
  if (rootHash.length !== HASH_SIZE) throw bad(`the root hash is ${rootHash.length} bytes, expected ${HASH_SIZE}`);
  const emptyExtension = extensions.findIndex((e) => e === "");
  if (emptyExtension >= 0) throw bad(`extension line ${emptyExtension + 1} is empty`);
  return extensions.length > 0
    ? { origin, treeSize: Number(size), rootHash, extensions }
    : { origin, treeSize: Number(size), rootHash };
}

function decodeNote(noteText: string | Uint8Array): string {
  let note: string;
  if (typeof noteText === "string") {
    if (noteText.length > MAX_NOTE_BYTES) throw noteError("too_large", `note is larger than ${MAX_NOTE_BYTES} bytes`);
    note = noteText;
  } else if (noteText instanceof Uint8Array) {
    if (noteText.length > MAX_NOTE_BYTES) throw noteError("too_large", `note is larger than ${MAX_NOTE_BYTES} bytes`);
    try {
      note = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(noteText);
    } catch {
      throw noteError("not_utf8", "note is not valid UTF-8");
    }
  } else {
    throw noteError("not_text", "note must be a string or bytes");
  }
  if (Buffer.byteLength(note, "utf8") > MAX_NOTE_BYTES) throw noteError("too_large", `note is larger than ${MAX_NOTE_BYTES} bytes`);
  const problem = textProblem(note);
  if (problem) throw noteError(problem.reason, `note ${problem.message}`);
  if (!note.endsWith("\n")) throw noteError("missing_final_newline", "note does not end with a newline");
  return note;
}

function parseSignatureLine(line: string, n: number): { name: string; keyId: number; signature: Buffer } {
  const bad = (why: string): MandateError => noteError("malformed_signature_line", `signature line ${n} ${why}`);
  if (!line.startsWith(EM_DASH_PREFIX)) throw bad("does not start with an em dash and a space");
  const rest = line.slice(EM_DASH_PREFIX.length);
  const space = rest.lastIndexOf(" ");
  if (space < 0) throw bad("has no space between key name and signature");
  const name = rest.slice(0, space);
  if (!isValidKeyName(name)) throw bad("has an invalid key name");
  const blob = decodeBase64Strict(rest.slice(space + 1));
  if (blob === undefined) throw bad("has a signature that is not canonical base64");
  if (blob.length <= KEY_ID_SIZE) throw bad("has a signature too short to hold a key id and a signature");
  return { name, keyId: blob.readUInt32BE(0), signature: blob.subarray(KEY_ID_SIZE) };
}

function ed25519Verify(message: Buffer, publicKey: KeyObject, signature: Buffer): boolean {
  if (signature.length !== ED25519_SIGNATURE_SIZE) return false;
  try {
    return verify(null, message, publicKey, signature);
  } catch {
    return false;
  }
}

/** key id = SHA-256(name || 0x0A || 0x01 || public key)[:4], read big-endian. */
function keyId(name: string, rawPublicKey: Buffer): number {
  return createHash("sha256")
    .update(name, "utf8")
    .update(Buffer.from([0x0a, ED25519_TYPE]))
    .update(rawPublicKey)
    .digest()
    .readUInt32BE(0);
}

function keyIdHex(id: number): string {
  return id.toString(16).padStart(8, "0");
}

function rawEd25519PublicKey(publicKey: KeyObject): Buffer {
  const jwk = publicKey.export({ format: "jwk" });
  const raw = typeof jwk.x === "string" ? Buffer.from(jwk.x, "base64url") : Buffer.alloc(0);
  if (raw.length !== ED25519_PUBLIC_KEY_SIZE) throw new MandateError("INTERNAL", "Ed25519 public key did not export as 32 bytes");
  return raw;
}

/** Node's base64 decoder skips junk; a signature format needs one encoding per value. */
function decodeBase64Strict(text: string): Buffer | undefined {
  if (text.length === 0 || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64");
  return bytes.toString("base64") === text ? bytes : undefined;
}

function checkKeyName(name: string): void {
  if (!isValidKeyName(name)) {
    throw new MandateError("INVALID_ARGUMENT", "an audit key name must be non-empty, without spaces, control characters or '+'");
  }
}

function isValidKeyName(name: string): boolean {
  return typeof name === "string" && name.length > 0 && !/[\s+\p{Cc}\p{Cs}]/u.test(name);
}

function isValidLine(line: string): boolean {
  return line.length > 0 && textProblem(line) === undefined && !line.includes("\n");
}

function textProblem(text: string): { reason: CheckpointErrorReason; message: string } | undefined {
  // With the u flag \p{Cs} matches only unpaired surrogates, which have no UTF-8 encoding.
  if (/\p{Cs}/u.test(text)) return { reason: "not_utf8", message: "is not valid UTF-8 (unpaired surrogate)" };
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) return { reason: "control_character", message: "contains a control character other than newline" };
  return undefined;
}

function noteError(reason: CheckpointErrorReason, message: string): MandateError {
  return new MandateError("MALFORMED_REQUEST", message, { details: { reason } });
}

function truncate(s: string): string {
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
