/**
 * Paces container group creations and deletions under ACI's own windows (100 per 5 minutes
 * and 300 per hour, per subscription and region, by default) instead of bouncing off them.
 *
 * Each pod that cannot go now gets a slot, the moment its operation fits every window given
 * our own operations and the slots handed out before it (first come, first served); the
 * provider answers with a deferral until that slot, so nothing waits inside a call. A 429
 * from ACI (other clients share the subscription's windows) blocks every slot until its
 * Retry-After. Hand-written: the shape (per-key reservations over several sliding windows,
 * an injectable clock) is a few lines and no maintained package offers it.
 */

/** At most `count` operations in any `windowMs`. */
export interface PaceWindow {
  count: number;
  windowMs: number;
}

/** ACI's documented creation and deletion windows (learn.microsoft.com, "Azure Container Instances service quotas"). */
export const ACI_WINDOWS: readonly PaceWindow[] = [
  { count: 100, windowMs: 300_000 },
  { count: 300, windowMs: 3_600_000 },
];

export type PaceDecision =
  | { go: true; stamp: number }
  | {
      go: false;
      /** When the operation fits (epoch ms on the pacer's clock). */
      at: number;
      /** The window that holds it back, or undefined when a 429 does. */
      window: PaceWindow | undefined;
    };

export interface PacerOptions {
  windows: readonly PaceWindow[];
  now?: () => number;
  /**
   * Added to each computed slot: our clock stamps a request before ACI counts it, so the
   * operation that frees the slot leaves ACI's window a little after it leaves ours.
   */
  marginMs?: number;
}

export class WindowPacer {
  private readonly windows: readonly PaceWindow[];
  private readonly now: () => number;
  private readonly marginMs: number;
  private readonly longestMs: number;
  /** Our own operations, oldest first. */
  private stamps: number[] = [];
  /** key → slot, in the order they were handed out. */
  private readonly slots = new Map<string, { at: number; window: PaceWindow | undefined }>();
  private blockedUntil = 0;

  constructor(o: PacerOptions) {
    this.windows = o.windows.filter((w) => w.count > 0 && w.windowMs > 0);
    this.now = o.now ?? Date.now;
    this.marginMs = o.marginMs ?? 1_000;
    this.longestMs = Math.max(0, ...this.windows.map((w) => w.windowMs));
  }

  /**
   * Whether the operation for `key` may go now (it is then counted), or its slot. A key asking
   * again before its slot gets the same slot; at its slot it goes if the windows agree.
   */
  acquire(key: string): PaceDecision {
    const now = this.now();
    this.prune(now);
    const held = this.slots.get(key);
    if (held && held.at > now) return { go: false, at: held.at, window: held.window };
    // Without a slot, a key waits behind those holding one (first come, first served).
    if (held) this.slots.delete(key);
    const ahead = held ? undefined : this.lastSlot()?.at;
    if (now >= this.blockedUntil && ahead === undefined) {
      const full = this.fullWindow(this.stamps, now);
      if (!full) {
        this.stamps.push(now);
        return { go: true, stamp: now };
      }
    }
    const slot = this.nextSlot(now, ahead);
    this.slots.set(key, slot);
    return { go: false, ...slot };
  }

  /**
   * The operation counted at `stamp` was answered now: ACI counted it when it arrived, somewhere
   * between the two (our own queueing in between can take seconds in a burst), so it is counted
   * from now on, and never leaves our windows before it leaves ACI's.
   */
  confirm(stamp: number): void {
    const now = this.now();
    this.cancel(stamp);
    let i = this.stamps.length;
    while (i > 0 && (this.stamps[i - 1] ?? 0) > now) i--;
    this.stamps.splice(i, 0, now);
  }

  /** The operation counted at `stamp` did not happen (a failed request): it leaves the windows. */
  cancel(stamp: number): void {
    const i = this.stamps.lastIndexOf(stamp);
    if (i >= 0) this.stamps.splice(i, 1);
  }

  /**
   * The operation counted at `stamp` goes later after all (ARM's budget), at `at`: it leaves the
   * windows and keeps its place in line with a slot at `at`.
   */
  postpone(key: string, stamp: number, at: number): void {
    this.cancel(stamp);
    this.slots.set(key, { at, window: undefined });
  }

  /** ACI answered 429 with this Retry-After: nothing goes before it. */
  throttled(retryAfterMs: number): void {
    this.blockedUntil = Math.max(this.blockedUntil, this.now() + retryAfterMs);
  }

  /** The key no longer waits (its pod was deleted, or its operation failed for good). */
  release(key: string): void {
    this.slots.delete(key);
  }

  /** Keys holding a slot (for metrics and tests). */
  get waiting(): number {
    return this.slots.size;
  }

  private lastSlot(): { at: number; window: PaceWindow | undefined } | undefined {
    let last: { at: number; window: PaceWindow | undefined } | undefined;
    for (const s of this.slots.values()) if (last === undefined || s.at > last.at) last = s;
    return last;
  }

  private fullWindow(events: readonly number[], at: number): PaceWindow | undefined {
    for (const w of this.windows) {
      let n = 0;
      for (let i = events.length - 1; i >= 0 && at - (events[i] ?? 0) < w.windowMs; i--) n++;
      if (n >= w.count) return w;
    }
    return undefined;
  }

  /** The earliest moment at or after `now` (and after `after`) at which one more operation fits every window. */
  private nextSlot(now: number, after: number | undefined): { at: number; window: PaceWindow | undefined } {
    const events = [...this.stamps, ...[...this.slots.values()].map((s) => s.at)].sort((a, b) => a - b);
    // Every event is at or before the slot, so the events in the window ending at it are the latest ones.
    let window: PaceWindow | undefined;
    let windowAt = Number.NEGATIVE_INFINITY;
    for (const w of this.windows) {
      const freeing = events.length >= w.count ? events[events.length - w.count] : undefined;
      if (freeing === undefined) continue;
      const fits = freeing + w.windowMs + this.marginMs;
      if (fits > windowAt) {
        windowAt = fits;
        window = w;
      }
    }
    const at = Math.max(now, after ?? now, windowAt, this.blockedUntil);
    // What holds it back: a 429 when its Retry-After is the last word, else the fullest window, else
    // (in line behind slots held back by a window) the window of the slot ahead.
    if (this.blockedUntil >= at && this.blockedUntil > now) return { at, window: undefined };
    return { at, window: window ?? this.lastSlot()?.window ?? this.windows[0] };
  }

  private prune(now: number): void {
    let i = 0;
    while (i < this.stamps.length && now - (this.stamps[i] ?? 0) >= this.longestMs) i++;
    if (i > 0) this.stamps = this.stamps.slice(i);
  }
}

/**
 * Slots for a token bucket (ARM's write budget): a call that would wait for a token gets the
 * moment its token is expected instead, one refill interval after the slot before it, so the
 * waiting calls come back one by one rather than all at once.
 */
export class TokenPacer {
  private readonly slots = new Map<string, number>();

  constructor(
    private readonly bucket: { available(): number; readonly waiting: number; readonly perSecond: number },
    private readonly now: () => number = Date.now,
  ) {}

  /** undefined: go now; otherwise the slot (epoch ms). */
  acquire(key: string): number | undefined {
    const now = this.now();
    const held = this.slots.get(key);
    if (held !== undefined) {
      if (held > now) return held;
      this.slots.delete(key);
      return undefined;
    }
    const tokens = this.bucket.available() - this.bucket.waiting;
    if (tokens >= 1 && this.slots.size === 0) return undefined;
    const interval = 1000 / this.bucket.perSecond;
    let last = now + Math.max(0, 1 - tokens) * interval;
    for (const s of this.slots.values()) last = Math.max(last, s + interval);
    const at = Math.ceil(last);
    this.slots.set(key, at);
    return at;
  }

  release(key: string): void {
    this.slots.delete(key);
  }
}
