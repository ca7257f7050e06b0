/** Exponential backoff with full jitter bounds, shared by every retry loop. */
export interface BackoffPolicy {
  /** Delay after the first failure. */
  baseMs: number;
  /** Ceiling for any single delay. */
  maxMs: number;
  /** Multiplier per further failure (default 2). */
  factor?: number;
  /** Fraction of the delay that is randomized (0 = none, default 0.2). */
  jitter?: number;
}

/** Delay before retry number `failures` (1 = first retry). */
export function backoffDelay(policy: BackoffPolicy, failures: number, random: () => number = Math.random): number {
  const factor = policy.factor ?? 2;
  const jitter = policy.jitter ?? 0.2;
  const n = Math.max(0, failures - 1);
  const raw = Math.min(policy.maxMs, policy.baseMs * Math.pow(factor, Math.min(n, 64)));
  const spread = raw * jitter;
  return Math.max(0, Math.round(raw - spread + random() * 2 * spread));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
