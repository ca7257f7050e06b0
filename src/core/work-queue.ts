/**
 * A keyed work queue in the style of client-go's workqueue:
 * - a key is queued at most once (duplicates fold);
 * - a key is never processed by two workers at once: adding it while it is being
 *   processed marks it dirty, and it runs again when the current run ends;
 * - a failed key is retried with exponential backoff (per key), reset on success;
 * - at most `concurrency` keys are processed at a time.
 * Written by hand because no maintained npm package offers these semantics together.
 */
import { backoffDelay, type BackoffPolicy } from '../common/backoff.js';

/** Errors may carry the earliest moment a retry makes sense. */
export interface RetryHint {
  retryAfterMs?: number;
}

export type KeyHandler<K> = (key: K) => Promise<void>;

export interface WorkQueueOptions<K> {
  concurrency: number;
  backoff: BackoffPolicy;
  handler: KeyHandler<K>;
  /** Called for each failed run, before the retry is scheduled. */
  onError?: (key: K, err: unknown, failures: number, retryInMs: number) => void;
  /**
   * Whether a run that returns clears the key's failure count (default true). A handler that
   * retries through addRateLimited sets false and calls forget() itself, as client-go's do.
   */
  forgetOnSuccess?: boolean;
  /** Called after each run with its duration. */
  onDone?: (key: K, ms: number, ok: boolean) => void;
}

export class WorkQueue<K> {
  private readonly queue: K[] = [];
  private readonly queued = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly dirty = new Set<K>();
  private readonly failures = new Map<K, number>();
  private readonly delayed = new Map<K, { at: number; timer: NodeJS.Timeout }>();
  private running = 0;
  private stopped = false;
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly opts: WorkQueueOptions<K>) {
    if (!(opts.concurrency >= 1)) throw new RangeError('concurrency must be at least 1');
  }

  /** Keys waiting to run, including those waiting out a backoff. */
  get depth(): number {
    const delayedOnly = [...this.delayed.keys()].filter((k) => !this.queued.has(k)).length;
    return this.queue.length + delayedOnly;
  }

  get active(): number {
    return this.running;
  }

  failuresOf(key: K): number {
    return this.failures.get(key) ?? 0;
  }

  add(key: K): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  /** Adds the key after `ms`; an earlier pending delayed add wins. */
  addAfter(key: K, ms: number): void {
    if (this.stopped) return;
    if (ms <= 0) return this.add(key);
    const at = Date.now() + ms;
    const existing = this.delayed.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, timer });
  }

  /** Counts a failure for the key and schedules it after the backoff (at least minMs). */
  addRateLimited(key: K, minMs = 0): number {
    const n = (this.failures.get(key) ?? 0) + 1;
    this.failures.set(key, n);
    const delay = Math.max(minMs, backoffDelay(this.opts.backoff, n));
    this.addAfter(key, delay);
    return delay;
  }

  /** Clears the key's failure count (after a success). */
  forget(key: K): void {
    this.failures.delete(key);
  }

  /** Resolves when nothing is queued or running (delayed keys are ignored). */
  whenIdle(): Promise<void> {
    if (this.queue.length === 0 && this.running === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  /** Stops taking work, drops delayed keys, and waits for running handlers. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const d of this.delayed.values()) clearTimeout(d.timer);
    this.delayed.clear();
    this.queue.length = 0;
    this.queued.clear();
    this.dirty.clear();
    await this.whenIdle();
  }

  private pump(): void {
    while (!this.stopped && this.running < this.opts.concurrency && this.queue.length > 0) {
      const key = this.queue.shift() as K;
      this.queued.delete(key);
      this.processing.add(key);
      this.running++;
      void this.run(key);
    }
    this.checkIdle();
  }

  private async run(key: K): Promise<void> {
    const started = performance.now();
    let ok = true;
    try {
      await this.opts.handler(key);
      if (this.opts.forgetOnSuccess !== false) this.failures.delete(key);
    } catch (err) {
      ok = false;
      if (!this.stopped) {
        const hint = (err as RetryHint | undefined)?.retryAfterMs;
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        const delay = Math.max(typeof hint === 'number' ? hint : 0, backoffDelay(this.opts.backoff, n));
        this.opts.onError?.(key, err, n, delay);
        this.addAfter(key, delay);
      }
    } finally {
      this.opts.onDone?.(key, performance.now() - started, ok);
      this.processing.delete(key);
      this.running--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
    }
  }

  private checkIdle(): void {
    if (this.queue.length === 0 && this.running === 0 && this.idleWaiters.length > 0) {
      const w = this.idleWaiters;
      this.idleWaiters = [];
      for (const r of w) r();
    }
  }
}
