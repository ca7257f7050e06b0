/**
 * A token bucket shaped like ARM's throttling (a bucket of N requests refilled
 * at R per second), with FIFO waiters and a "blocked until" for Retry-After.
 *
 * Hand-written: the common npm limiters are either interval-window based or
 * Redis-backed; this one is ~60 lines and must honour Retry-After exactly.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private blockedUntil = 0;
  private readonly waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly capacity: number,
    readonly refillPerSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(capacity >= 1) || !(refillPerSecond > 0)) throw new RangeError('token bucket needs capacity ≥ 1 and refill > 0');
    this.tokens = capacity;
    this.last = now();
  }

  /** Resolves when the caller may send one request. */
  take(): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.drain();
    });
  }

  /** No request leaves before `until` (epoch ms), e.g. after a 429 with Retry-After. */
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

  private refill(): void {
    const t = this.now();
    if (t > this.last) {
      this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.refillPerSecond);
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
    const untilToken = this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.refillPerSecond) * 1000;
    const wait = Math.max(this.blockedUntil - t, untilToken, 1);
    this.timer = setTimeout(() => this.drain(), Math.ceil(wait));
  }
}
