/**
 * One breaker per target (provider + upstream model): after `failureThreshold`
 * consecutive failures (5xx, timeouts, connection errors) the target is skipped for
 * `cooldownMs`; then one probe request is let through, and its result closes the
 * breaker or opens it again. A 429 is not a failure: the target is up, only busy.
 */
interface BreakerState {
  failures: number;
  openUntil: number;
  probing: boolean;
}

export class CircuitBreakers {
  private readonly states = new Map<string, BreakerState>();

  constructor(
    private readonly failureThreshold: number,
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  private state(id: string): BreakerState {
    let s = this.states.get(id);
    if (!s) {
      s = { failures: 0, openUntil: 0, probing: false };
      this.states.set(id, s);
    }
    return s;
  }

  /** Whether a request may go to this target now (taking the half-open probe slot if it is the one). */
  tryAcquire(id: string): boolean {
    const s = this.state(id);
    if (s.openUntil === 0) return true;
    if (this.now() < s.openUntil || s.probing) return false;
    s.probing = true;
    return true;
  }

  success(id: string): void {
    const s = this.state(id);
    s.failures = 0;
    s.openUntil = 0;
    s.probing = false;
  }

  failure(id: string): void {
    const s = this.state(id);
    s.failures += 1;
    if (s.probing || s.failures >= this.failureThreshold) s.openUntil = this.now() + this.cooldownMs;
    s.probing = false;
  }

  /** Releases a probe slot taken for a request that ended without a verdict (the caller went away). */
  release(id: string): void {
    this.state(id).probing = false;
  }

  isOpen(id: string): boolean {
    const s = this.states.get(id);
    return !!s && s.openUntil !== 0 && this.now() < s.openUntil;
  }

  /** Milliseconds until the earliest of these targets may be probed. */
  retryInMs(ids: string[]): number {
    const now = this.now();
    return Math.max(0, Math.min(...ids.map((id) => (this.states.get(id)?.openUntil ?? now) - now)));
  }
}

/** Recent time-to-headers per target, as an exponentially weighted moving average. */
export class LatencyTracker {
  private readonly ewma = new Map<string, number>();

  constructor(private readonly alpha = 0.3) {}

  record(id: string, ms: number): void {
    const previous = this.ewma.get(id);
    this.ewma.set(id, previous === undefined ? ms : previous + this.alpha * (ms - previous));
  }

  /** Unmeasured targets sort first, so every target gets measured. */
  get(id: string): number {
    return this.ewma.get(id) ?? -1;
  }
}
