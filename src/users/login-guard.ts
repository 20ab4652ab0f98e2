import { RateLimiterMemory } from "rate-limiter-flexible";
import { MandateError } from "../errors/index.js";

export interface LoginLimits {
  /** failed logins allowed per user name within `windowSeconds` before it is blocked */
  perUser: number;
  /** failed logins allowed per remote address within `windowSeconds` */
  perAddress: number;
  windowSeconds: number;
  /** how long a user name or address stays blocked once over its limit */
  blockSeconds: number;
}

export const DEFAULT_LOGIN_LIMITS: LoginLimits = { perUser: 5, perAddress: 30, windowSeconds: 15 * 60, blockSeconds: 15 * 60 };

/**
 * Counts failed logins per user name and per address. A blocked key is refused before
 * any password is checked, so guessing costs the attacker time, not us CPU. Counters are
 * per process: an attacker spreading over replicas gets at most limit × replicas tries.
 */
export class LoginGuard {
  private readonly byUser: RateLimiterMemory;
  private readonly byAddress: RateLimiterMemory;

  constructor(private readonly limits: LoginLimits = DEFAULT_LOGIN_LIMITS) {
    this.byUser = new RateLimiterMemory({ keyPrefix: "login-user", points: limits.perUser, duration: limits.windowSeconds, blockDuration: limits.blockSeconds });
    this.byAddress = new RateLimiterMemory({ keyPrefix: "login-address", points: limits.perAddress, duration: limits.windowSeconds, blockDuration: limits.blockSeconds });
  }

  /** Throws RATE_LIMITED when the user name or the address has used up its failures. */
  async assertAllowed(user: string, address: string): Promise<void> {
    const [u, a] = await Promise.all([this.byUser.get(user.toLowerCase()), this.byAddress.get(address)]);
    const blocked = [
      u && u.consumedPoints >= this.limits.perUser ? u.msBeforeNext : 0,
      a && a.consumedPoints >= this.limits.perAddress ? a.msBeforeNext : 0,
    ];
    const wait = Math.max(...blocked);
    if (wait > 0) {
      throw new MandateError("RATE_LIMITED", `too many failed logins; try again in ${Math.ceil(wait / 1000)} s`, { details: { retryAfterSeconds: Math.ceil(wait / 1000), reason: "rate_limited" } });
    }
  }

  async recordFailure(user: string, address: string): Promise<void> {
    // consume() rejects once over the limit; the block it sets is what assertAllowed reads.
    await Promise.allSettled([this.byUser.consume(user.toLowerCase()), this.byAddress.consume(address)]);
  }

  /** A successful login clears the user's count (not the address's: one good account must not launder guesses at others). */
  async recordSuccess(user: string): Promise<void> {
    await this.byUser.delete(user.toLowerCase());
  }
}
