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

/** At most `count` operations in any `windowSeconds` (a sliding window, as ACI counts them). */
export interface RateWindow {
  count: number;
  windowSeconds: number;
}

export interface ThrottleLimits {
  read: BucketLimit;
  write: BucketLimit;
  delete: BucketLimit;
  /** Container group creations allowed, per subscription and region, in every one of these windows (ACI's own limit). */
  creations: RateWindow[];
  /** Container group deletions allowed, likewise. */
  deletions: RateWindow[];
}

/**
 * ACI's documented limits ("Azure Container Instances service quotas and region availability",
 * learn.microsoft.com): container creates 100 per 5 minutes and 300 per hour, container deletes
 * the same, per subscription and region. These are the defaults: a test that lifts them says why.
 */
export const aciRateWindows = (): RateWindow[] => [
  { count: 100, windowSeconds: 300 },
  { count: 300, windowSeconds: 3600 },
];

export const defaultThrottleLimits = (): ThrottleLimits => ({
  read: { capacity: 250, refillPerSecond: 25 },
  write: { capacity: 200, refillPerSecond: 10 },
  delete: { capacity: 200, refillPerSecond: 10 },
  creations: aciRateWindows(),
  deletions: aciRateWindows(),
});

/**
 * How a caller overrides a list of windows: a list replaces them all; one (partial) window
 * replaces them all by that single window (what a test lifting the limit means), its missing
 * fields taken from the first current window.
 */
export type RateWindowsOverride = Partial<RateWindow> | RateWindow[];

export function mergeWindows(base: RateWindow[], o: RateWindowsOverride | undefined): RateWindow[] {
  if (!o) return base;
  if (Array.isArray(o)) return o.map((w) => ({ ...w }));
  const first = base[0] ?? { count: 100, windowSeconds: 300 };
  return [{ ...first, ...o }];
}

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

/** What a full window says: which window, and when its oldest operation leaves it. */
export type WindowResult =
  { ok: true; remaining: number } | { ok: false; retryAfterSeconds: number; window: RateWindow };

/**
 * Sliding-window counters of operations (creations, deletions) per scope (subscription and
 * region). An operation is recorded only when every window has room.
 */
export class RateWindows {
  private readonly stamps = new Map<string, number[]>();

  /** `windows` is asked with the scope (subscription and region: each may have windows of its own). */
  constructor(
    private readonly windows: (scope: string) => RateWindow[],
    private readonly clock: Clock,
  ) {}

  take(scope: string): WindowResult {
    const windows = this.windows(scope);
    const now = this.clock();
    const longest = Math.max(0, ...windows.map((w) => w.windowSeconds)) * 1000;
    const list = (this.stamps.get(scope) ?? []).filter((t) => now - t < longest);
    this.stamps.set(scope, list);
    let remaining = Number.POSITIVE_INFINITY;
    let full: { retryAfterSeconds: number; window: RateWindow } | undefined;
    for (const w of windows) {
      const windowMs = w.windowSeconds * 1000;
      const inWindow = list.filter((t) => now - t < windowMs);
      if (inWindow.length >= w.count) {
        // The stamp whose leaving makes room for one more.
        const freeing = inWindow[inWindow.length - w.count] ?? now;
        const seconds = Math.max(1, Math.ceil((freeing + windowMs - now) / 1000));
        if (!full || seconds > full.retryAfterSeconds) full = { retryAfterSeconds: seconds, window: w };
      } else remaining = Math.min(remaining, w.count - inWindow.length - 1);
    }
    if (full) return { ok: false, ...full };
    list.push(now);
    return { ok: true, remaining: Number.isFinite(remaining) ? remaining : 0 };
  }

  reset(): void {
    this.stamps.clear();
  }
}
