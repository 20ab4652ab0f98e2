import type { TrustDomainAuthority } from "./authority.js";
import { type JwtBundle, parseSpiffeBundle } from "./bundle.js";
import { type VerifiedJwtSvid, verifyJwtSvid } from "./jwt-svid.js";
import type { LockRegistry } from "./locks.js";
import { agentNameOf } from "./spiffe-id.js";
import { type ValidatedX509Svid, validateX509Svid } from "./x509-svid-validate.js";

/**
 * What every verifier inside Mandate (the API today, the proxies later) uses: SPIFFE
 * validation against this trust domain's current bundle, then the lock list, so that a
 * cryptographically valid but revoked identity is refused everywhere in the same way.
 */
export class SvidVerifier {
  private jwtBundle: { sequence: number; bundle: JwtBundle } | undefined;

  constructor(
    private readonly authority: TrustDomainAuthority,
    private readonly locks: LockRegistry,
  ) {}

  private jwtBundleFor = (trustDomain: string): JwtBundle | undefined => {
    if (trustDomain !== this.authority.trustDomain) return undefined;
    if (this.jwtBundle?.sequence !== this.authority.bundleSequence) {
      const bundle = parseSpiffeBundle(this.authority.bundle().document, trustDomain).jwtBundle;
      this.jwtBundle = { sequence: this.authority.bundleSequence, bundle };
    }
    return this.jwtBundle.bundle;
  };

  async verifyJwtSvid(token: string, audience: string, now?: Date): Promise<VerifiedJwtSvid> {
    const verified = await verifyJwtSvid(token, { audience, jwtBundleFor: this.jwtBundleFor, ...(now ? { now } : {}) });
    this.locks.assertFresh();
    this.locks.assertNotLocked({ spiffeId: verified.spiffeId.uri, agent: agentNameOf(verified.spiffeId) });
    return verified;
  }

  verifyX509Svid(chain: Buffer[], now?: Date): ValidatedX509Svid {
    const trustDomain = this.authority.trustDomain;
    const validated = validateX509Svid(chain, (td) => (td === trustDomain ? this.authority.x509Authorities() : undefined), now);
    this.locks.assertFresh();
    this.locks.assertNotLocked({ spiffeId: validated.spiffeId.uri, agent: agentNameOf(validated.spiffeId), serialHex: validated.serialHex });
    return validated;
  }
}
