/**
 * ARM-style request throttling: one token bucket per (subscription, principal, category),
 * shaped like ARM's documented limits, plus ACI's container-group creation rate limit.
 * Written by hand because the shape (refill per second, per-key buckets, Retry-After
 * derived from the deficit, an injectable clock for deterministic tests) is a few lines.
 */
export type Clock = () => number;

export interface BucketLimit {
  /** Bucket size: requests allowed in a burst. */
  capacity: number;
  /** Tokens added per second. */
  refillPerSecond: number;
}

export type RequestCategory = 'read' | 'write' | 'delete';

export interface ThrottleLimits {
  read: BucketLimit;
  write: BucketLimit;
  delete: BucketLimit;
  /** Container group creations allowed per window, per subscription (ACI's own rate limit). */
  creations: { count: number; windowSeconds: number };
}

export const defaultThrottleLimits = (): ThrottleLimits => ({
  read: { capacity: 250, refillPerSecond: 25 },
  write: { capacity: 200, refillPerSecond: 10 },
  delete: { capacity: 200, refillPerSecond: 10 },
  creations: { count: 100, windowSeconds: 300 },
});

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export type TakeResult = { ok: true; remaining: number } | { ok: false; retryAfterSeconds: number };

export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();

  /** `limits` is asked with the bucket's key (its subscription may have limits of its own). */
  constructor(
    private readonly limits: (key: string) => ThrottleLimits,
    private readonly clock: Clock,
  ) {}

  take(key: string, category: RequestCategory): TakeResult {
    const limit = this.limits(key)[category];
    const now = this.clock();
    const id = `${category}\u0000${key}`;
    let bucket = this.buckets.get(id);
    if (!bucket) {
      bucket = { tokens: limit.capacity, updatedAt: now };
      this.buckets.set(id, bucket);
    } else {
      const elapsed = Math.max(0, now - bucket.updatedAt) / 1000;
      bucket.tokens = Math.min(limit.capacity, bucket.tokens + elapsed * limit.refillPerSecond);
      bucket.updatedAt = now;
    }
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return { ok: true, remaining: Math.floor(bucket.tokens) };
    }
    const deficit = 1 - bucket.tokens;
    const seconds = limit.refillPerSecond > 0 ? deficit / limit.refillPerSecond : 3600;
    return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil(seconds)) };
  }

  reset(): void {
    this.buckets.clear();
  }
}

/** Sliding-window counter of creations per subscription. */
export class CreationWindow {
  private readonly stamps = new Map<string, number[]>();

  /** `limits` is asked with the subscription (it may have a window of its own). */
  constructor(
    private readonly limits: (subscription: string) => ThrottleLimits,
    private readonly clock: Clock,
  ) {}

  /** Records a creation when allowed; otherwise says when the oldest one leaves the window. */
  take(subscription: string): TakeResult {
    const { count, windowSeconds } = this.limits(subscription).creations;
    const now = this.clock();
    const windowMs = windowSeconds * 1000;
    const list = (this.stamps.get(subscription) ?? []).filter((t) => now - t < windowMs);
    if (list.length >= count) {
      this.stamps.set(subscription, list);
      const oldest = list[0] ?? now;
      return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((oldest + windowMs - now) / 1000)) };
    }
    list.push(now);
    this.stamps.set(subscription, list);
    return { ok: true, remaining: count - list.length };
  }

  reset(): void {
    this.stamps.clear();
  }
}
