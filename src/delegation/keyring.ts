import { type KeyObject, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes } from "node:crypto";
import { MandateError } from "../errors/index.js";
import type { Store } from "../store/index.js";
import { MAX_GRANT_TTL_MS } from "./limits.js";

const KEYS_META = "delegation_signing_keys";
/** A new signing key every 30 days; the old one verifies until no token it signed can be alive. */
export const ROTATE_AFTER_MS = 30 * 24 * 3600_000;
const RELOAD_AT_MOST_EVERY_MS = 1000;

export interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
  createdAt: number;
}

interface StoredKey {
  kid: string;
  privatePem: string;
  createdAt: number;
}

function newKey(createdAt: number): StoredKey {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return { kid: `dlg-${randomBytes(8).toString("hex")}`, privatePem: privateKey.export({ type: "pkcs8", format: "pem" }) as string, createdAt };
}

function load(stored: StoredKey[]): SigningKey[] {
  return stored.map((k) => {
    const privateKey = createPrivateKey(k.privatePem);
    return { kid: k.kid, privateKey, publicKey: createPublicKey(privateKey), createdAt: k.createdAt };
  });
}

/**
 * The delegation-token signing keys of one trust domain, shared by every control plane
 * through the store: the newest signs, all verify. Dedicated (not the JWT-SVID key), so a
 * delegation token never verifies as an identity. Rotated when the newest is 30 days old,
 * by whichever control plane issues a token first (a compare-and-set on the stored list);
 * a retired key is kept until every token it signed is past the longest grant lifetime.
 */
export class DelegationKeyring {
  private keys: SigningKey[] = [];
  private raw = "";
  private lastReload = 0;

  private constructor(
    private readonly store: Store,
    private readonly now: () => number,
  ) {}

  static async open(store: Store, now: () => number = Date.now): Promise<DelegationKeyring> {
    const ring = new DelegationKeyring(store, now);
    await ring.reload();
    if (ring.keys.length === 0) {
      const value = JSON.stringify([newKey(now())]);
      // Two control planes starting together: the second insert loses and both read the winner.
      await store.db.insertInto("meta").values({ key: KEYS_META, value }).onConflict((oc) => oc.column("key").doNothing()).execute();
      await ring.reload();
      if (ring.keys.length === 0) throw new MandateError("INTERNAL", "the delegation signing key could not be stored");
    }
    return ring;
  }

  current(): SigningKey {
    return this.keys[this.keys.length - 1]!;
  }

  all(): SigningKey[] {
    return this.keys;
  }

  /** The key with this kid; an unknown kid re-reads the store (at most once a second), for a key another control plane just made. */
  async find(kid: string): Promise<SigningKey | undefined> {
    const found = this.keys.find((k) => k.kid === kid);
    if (found || this.now() - this.lastReload < RELOAD_AT_MOST_EVERY_MS) return found;
    await this.reload();
    return this.keys.find((k) => k.kid === kid);
  }

  /** Adds a new key when the newest is due and drops keys nothing alive can have been signed with. */
  async rotateIfDue(): Promise<void> {
    const t = this.now();
    if (t - this.current().createdAt < ROTATE_AFTER_MS) return;
    const stored = JSON.parse(this.raw) as StoredKey[];
    // A key stops signing when its successor is made; its tokens live at most as long as the longest grant.
    const kept = stored.filter((k, i) => i === stored.length - 1 || stored[i + 1]!.createdAt + MAX_GRANT_TTL_MS > t);
    const next = JSON.stringify([...kept, newKey(t)]);
    await this.store.db.updateTable("meta").set({ value: next }).where("key", "=", KEYS_META).where("value", "=", this.raw).execute();
    await this.reload();
  }

  private async reload(): Promise<void> {
    this.lastReload = this.now();
    const value = await this.store.getMeta(KEYS_META);
    if (!value || value === this.raw) return;
    this.keys = load(JSON.parse(value) as StoredKey[]);
    this.raw = value;
  }
}
