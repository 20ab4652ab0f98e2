import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

/**
 * The client side of SCRAM-SHA-256 (RFC 5802 / RFC 7677) as PostgreSQL speaks it: the
 * user name in the exchange is empty (the server takes it from the startup packet) and
 * channel binding is not used ("n,,"). The salted password is cached per salt and
 * iteration count, so reconnects do not pay PBKDF2's deliberate cost each time.
 */
export class ScramClient {
  private clientFirstBare = "";
  private expectedServerSignature: Buffer | undefined;

  /** `user` and `clientNonce` are for test vectors; PostgreSQL takes the user from the startup packet. */
  constructor(
    private readonly password: string,
    private readonly user = "",
    private readonly clientNonce = randomBytes(18).toString("base64"),
  ) {}

  clientFirstMessage(): string {
    this.clientFirstBare = `n=${this.user},r=${this.clientNonce}`;
    return `n,,${this.clientFirstBare}`;
  }

  clientFinalMessage(serverFirst: string): string {
    const attrs = parseAttributes(serverFirst);
    const nonce = attrs.get("r");
    const salt = attrs.get("s");
    const iterations = Number(attrs.get("i"));
    if (!nonce || !salt || !Number.isInteger(iterations) || iterations < 1) throw new Error("SCRAM: malformed server-first-message");
    if (!nonce.startsWith(this.clientNonce) || nonce.length <= this.clientNonce.length) throw new Error("SCRAM: the server nonce does not extend the client nonce");
    if (iterations > 1_000_000) throw new Error("SCRAM: iteration count too high");
    const salted = saltedPassword(this.password, salt, iterations);
    const clientKey = hmac(salted, "Client Key");
    const storedKey = createHash("sha256").update(clientKey).digest();
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.clientFirstBare},${serverFirst},${withoutProof}`;
    const signature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = clientKey[i]! ^ signature[i]!;
    this.expectedServerSignature = hmac(hmac(salted, "Server Key"), authMessage);
    return `${withoutProof},p=${proof.toString("base64")}`;
  }

  /** Throws unless the server proved it knows the password too. */
  verifyServerFinal(serverFinal: string): void {
    const attrs = parseAttributes(serverFinal);
    if (attrs.has("e")) throw new Error(`SCRAM: server error ${attrs.get("e")}`);
    const v = attrs.get("v");
    if (!v || !this.expectedServerSignature) throw new Error("SCRAM: malformed server-final-message");
    const got = Buffer.from(v, "base64");
    if (got.length !== this.expectedServerSignature.length || !timingSafeEqual(got, this.expectedServerSignature)) throw new Error("SCRAM: the server signature does not match");
  }
}

const saltedCache = new Map<string, Buffer>();

function saltedPassword(password: string, salt: string, iterations: number): Buffer {
  const key = createHash("sha256").update(`${password}\0${salt}\0${iterations}`).digest("base64");
  let value = saltedCache.get(key);
  if (!value) {
    // SASLprep is approximated by NFKC, which covers the passwords people type.
    value = pbkdf2Sync(Buffer.from(password.normalize("NFKC"), "utf8"), Buffer.from(salt, "base64"), iterations, 32, "sha256");
    if (saltedCache.size > 256) saltedCache.clear();
    saltedCache.set(key, value);
  }
  return value;
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

function parseAttributes(message: string): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const part of message.split(",")) {
    const eq = part.indexOf("=");
    if (eq === 1) attrs.set(part[0]!, part.slice(2));
  }
  return attrs;
}

/** PostgreSQL's md5 password: "md5" + md5(md5(password + user) + salt). */
export function md5Password(user: string, password: string, salt: Buffer): string {
  const inner = createHash("md5").update(password + user).digest("hex");
  return `md5${createHash("md5").update(Buffer.concat([Buffer.from(inner), salt])).digest("hex")}`;
}
