/**
 * A token-bucket rate limiter: `perSecond` tokens a second, at most `burst` saved up, FIFO
 * waiters, and a "blocked until" for a server's Retry-After. One bucket for the Kubernetes
 * client's QPS limit and for the ACI provider's ARM budgets (shaped like ARM's own buckets).
 *
 * Hand-written: @kubernetes/client-node has no client-side QPS limit, and the common npm
 * limiters are interval-window based or Redis-backed; none honours Retry-After exactly.
 * Named options, so the rate and the burst cannot be swapped at a call site.
 */
export interface TokenBucketOptions {
  /** Tokens added per second (> 0). */
  perSecond: number;
  /** Tokens held at most, and at the start (≥ 1). */
  burst: number;
  /** The clock, in ms (default `Date.now`; `blockUntil` takes a time on it). */
  now?: () => number;
}

export class TokenBucket {
  readonly perSecond: number;
  readonly burst: number;
  private readonly now: () => number;
  private tokens: number;
  private last: number;
  private blockedUntil = 0;
  private readonly waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(o: TokenBucketOptions) {
    if (!(o.perSecond > 0)) throw new RangeError(`perSecond must be positive, got ${o.perSecond}`);
    if (!(o.burst >= 1)) throw new RangeError(`burst must be at least 1, got ${o.burst}`);
    this.perSecond = o.perSecond;
    this.burst = o.burst;
    this.now = o.now ?? Date.now;
    this.tokens = o.burst;
    this.last = this.now();
  }

  /** Takes a token now if one is available (and nobody waits before us). */
  tryTake(): boolean {
    this.refill();
    if (this.waiters.length === 0 && this.now() >= this.blockedUntil && this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** Resolves once a token is taken. */
  take(): Promise<void> {
    if (this.tryTake()) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.drain();
    });
  }

  /** No token is given before `until` (on the bucket's clock), e.g. after a 429 with Retry-After. */
  blockUntil(until: number): void {
    if (until > this.blockedUntil) this.blockedUntil = until;
    // Throttled means the server's bucket is empty: stop spending ours too.
    this.tokens = Math.min(this.tokens, 0);
    this.drain();
  }

  /** The server reported `remaining` requests left in its bucket: never believe we have more. */
  sync(remaining: number): void {
    this.refill();
    if (remaining < this.tokens) this.tokens = remaining;
  }

  /** Tokens available right now (for tests and metrics). */
  available(): number {
    this.refill();
    return this.tokens;
  }

  /** Waiters not yet served. */
  get waiting(): number {
    return this.waiters.length;
  }

  private refill(): void {
    const t = this.now();
    if (t > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSecond);
      this.last = t;
    }
  }

  private drain(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.refill();
    const t = this.now();
    while (this.waiters.length > 0 && t >= this.blockedUntil && this.tokens >= 1) {
      this.tokens -= 1;
      this.waiters.shift()?.();
    }
    if (this.waiters.length === 0) return;
    const untilToken = this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.perSecond) * 1000;
    const wait = Math.max(this.blockedUntil - t, untilToken, 1);
    this.timer = setTimeout(() => this.drain(), Math.ceil(wait));
  }
}
