/**
 * Every ARM request goes through here: the read or write limiter, Retry-After on
 * 429, backoff on 5xx and network failures, and a count per operation and result.
 */
import { Counter, type Registry } from 'prom-client';
import { TransientProviderError } from '../../../core/provider.js';
import { ArmRequestError } from '../errors.js';
import { backoffDelay, sleep, type BackoffPolicy } from '../../../common/backoff.js';
import { Semaphore } from '../../../common/semaphore.js';
import { TokenBucket } from '../../../common/token-bucket.js';
import type { RateLimitConfig } from '../config.js';

/** ARM meters reads, writes and deletes in separate buckets. */
export type CallKind = 'read' | 'write' | 'delete';

/** What the caller observes about each attempt (for metrics and tests). */
export interface ArmAttempt {
  /** Same for every attempt of one logical call. */
  callId: number;
  operation: string;
  kind: CallKind;
  /** HTTP status, or 'network' when no response came back. */
  result: string;
  startedAt: number;
  /** For a 429: the moment its Retry-After allows the next attempt. */
  retryNotBefore?: number;
}

export interface ArmCallerOptions {
  limits: RateLimitConfig;
  /** Attempts for 5xx/network failures before giving up with a TransientProviderError. */
  maxAttempts?: number;
  /** Attempts after 429s before giving up (each waits its Retry-After). */
  maxThrottledAttempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /**
   * Requests in flight at once. A token is only spent when a request can leave
   * right away: tokens granted to requests that then queue in the HTTP agent would
   * reach ARM in a late burst, after ARM's bucket had already capped its refill.
   */
  maxInFlight?: number;
  registry?: Registry;
  onAttempt?: (a: ArmAttempt) => void;
  now?: () => number;
}

/** The parts of @azure/core-rest-pipeline's RestError we read (duck-typed: it may come from any copy of the package). */
interface RestErrorLike {
  statusCode?: number;
  code?: string;
  message: string;
  response?: { headers: { get(name: string): string | undefined } };
}

function asRestError(e: unknown): RestErrorLike | undefined {
  if (typeof e !== 'object' || e === null || !('message' in e)) return undefined;
  return e as RestErrorLike;
}

export function statusOf(e: unknown): number | undefined {
  return asRestError(e)?.statusCode;
}

export function isNotFound(e: unknown): boolean {
  return statusOf(e) === 404;
}

/** Retry-After in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(v: string | undefined, now: number): number | undefined {
  if (!v) return undefined;
  const t = v.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.ceil(Number(t) * 1000);
  const d = Date.parse(t);
  return Number.isNaN(d) ? undefined : Math.max(0, d - now);
}

const REMAINING: Record<CallKind, string> = {
  read: 'x-ms-ratelimit-remaining-subscription-reads',
  write: 'x-ms-ratelimit-remaining-subscription-writes',
  delete: 'x-ms-ratelimit-remaining-subscription-deletes',
};

const quotaCode = /quota|limitreached|ContainerGroupQuotaReached|CoreQuota/i;

export function isQuotaError(e: unknown): boolean {
  const r = asRestError(e);
  return r?.code !== undefined && quotaCode.test(r.code);
}

export class ArmCaller {
  readonly reads: TokenBucket;
  readonly writes: TokenBucket;
  readonly deletes: TokenBucket;
  readonly requests: Counter<'operation' | 'result'>;
  private readonly maxAttempts: number;
  private readonly maxThrottled: number;
  private readonly backoffPolicy: BackoffPolicy;
  private readonly now: () => number;
  private nextCallId = 1;
  /** When ARM last answered a request successfully (epoch ms; 0 = never). */
  lastSuccessAt = 0;
  private readonly inFlight: Record<CallKind, Semaphore>;
  private readonly sent: Record<CallKind, number> = { read: 0, write: 0, delete: 0 };

  constructor(private readonly opts: ArmCallerOptions) {
    this.now = opts.now ?? Date.now;
    const l = opts.limits;
    this.reads = new TokenBucket({ burst: l.readBucket, perSecond: l.readRefillPerSecond, now: this.now });
    this.writes = new TokenBucket({ burst: l.writeBucket, perSecond: l.writeRefillPerSecond, now: this.now });
    this.deletes = new TokenBucket({
      burst: l.deleteBucket ?? l.writeBucket,
      perSecond: l.deleteRefillPerSecond ?? l.writeRefillPerSecond,
      now: this.now,
    });
    this.maxAttempts = opts.maxAttempts ?? 5;
    this.maxThrottled = opts.maxThrottledAttempts ?? 20;
    // Jitter of a quarter either way keeps many callers failing together from retrying together.
    this.backoffPolicy = { baseMs: opts.baseDelayMs ?? 500, maxMs: opts.maxDelayMs ?? 30_000, jitter: 0.25 };
    const n = opts.maxInFlight ?? 32;
    this.inFlight = { read: new Semaphore(n), write: new Semaphore(n), delete: new Semaphore(n) };
    this.requests = new Counter({
      name: 'aci_connector_arm_requests_total',
      help: 'ARM requests sent by the ACI provider, by operation and result (HTTP status or "network").',
      labelNames: ['operation', 'result'],
      registers: opts.registry ? [opts.registry] : [],
    });
  }

  /**
   * Runs `fn` (one HTTP request) under the limiter for `kind`, retrying what is
   * worth retrying. `beforeRetry` runs before a retry after a failure whose outcome
   * is unknown (5xx, network): it returns a value to finish with instead of retrying
   * (used to detect a PUT that succeeded although its response was lost).
   */
  async call<T>(
    operation: string,
    kind: CallKind,
    fn: (signal: AbortSignal) => Promise<T>,
    opts: {
      timeoutMs?: number;
      beforeRetry?: () => Promise<T | undefined>;
      /** Attempts after 429s before giving up (default: the caller's); 1 hands the first 429 back at once. */
      maxThrottledAttempts?: number;
    } = {},
  ): Promise<T> {
    const bucket = kind === 'read' ? this.reads : kind === 'delete' ? this.deletes : this.writes;
    let failures = 0;
    let throttled = 0;
    let lastRetryAfter: number | undefined;
    const callId = this.nextCallId++;
    for (;;) {
      const release = await this.inFlight[kind].acquire();
      await bucket.take();
      const startedAt = this.now();
      this.sent[kind]++;
      const done = (): void => {
        this.sent[kind]--;
        release();
      };
      try {
        const out = await fn(AbortSignal.timeout(opts.timeoutMs ?? 60_000)).finally(done);
        this.record({ callId, operation, kind, result: 'success', startedAt });
        this.lastSuccessAt = this.now();
        return out;
      } catch (e) {
        const r = asRestError(e);
        const status = r?.statusCode;
        if (status === 429) {
          const wait = parseRetryAfter(r?.response?.headers.get('retry-after'), this.now()) ?? this.backoff(throttled);
          const notBefore = this.now() + wait;
          lastRetryAfter = wait;
          this.record({ callId, operation, kind, result: '429', startedAt, retryNotBefore: notBefore });
          // ARM passed the request (it says what is left of its bucket): the resource provider throttled
          // it (ACI's creation window, say), and other requests of the bucket need not wait.
          const left = Number(r?.response?.headers.get(REMAINING[kind]) ?? NaN);
          if (!(left > 0)) bucket.blockUntil(notBefore);
          if (++throttled >= (opts.maxThrottledAttempts ?? this.maxThrottled)) {
            throw new TransientProviderError('Throttled', `ARM throttled ${operation} ${throttled} times`, wait, {
              cause: e,
            });
          }
          continue;
        }
        const retryable = status === undefined ? isNetworkError(e) : status >= 500 || status === 408;
        this.record({ callId, operation, kind, result: status === undefined ? 'network' : String(status), startedAt });
        if (!retryable) {
          if (status === undefined) throw e;
          if (status === 404) throw e;
          if (isQuotaError(e)) {
            throw new TransientProviderError(
              'QuotaExceeded',
              `Azure Container Instances quota reached: ${r?.message ?? ''}`,
              30_000,
              { cause: e },
            );
          }
          if (status === 409)
            throw new TransientProviderError('Conflict', `ARM conflict on ${operation}: ${r?.message ?? ''}`, 5_000, {
              cause: e,
            });
          throw new ArmRequestError(
            operation,
            status,
            r?.code,
            `ARM ${operation} failed (${status}${r?.code ? ` ${r.code}` : ''}): ${r?.message ?? ''}`,
            { cause: e },
          );
        }
        if (++failures >= this.maxAttempts) {
          throw new TransientProviderError(
            'ArmUnavailable',
            `ARM ${operation} failed ${failures} times: ${r?.message ?? String(e)}`,
            lastRetryAfter,
            { cause: e },
          );
        }
        // A 503 may say when to come back; never earlier than that.
        const hinted = parseRetryAfter(r?.response?.headers.get('retry-after'), this.now()) ?? 0;
        if (hinted > 0) lastRetryAfter = hinted;
        await sleep(Math.max(hinted, this.backoff(failures)));
        if (opts.beforeRetry) {
          const done = await opts.beforeRetry();
          if (done !== undefined) return done;
        }
      }
    }
  }

  /** Aligns our bucket with ARM's `x-ms-ratelimit-remaining-subscription-*` header after a response. */
  observeRemaining(kind: CallKind, remaining: number): void {
    if (!Number.isFinite(remaining)) return;
    // Requests still in flight (besides this one) may not have reached ARM yet when it counted.
    const others = Math.max(0, this.sent[kind] - 1);
    (kind === 'read' ? this.reads : kind === 'delete' ? this.deletes : this.writes).sync(remaining - others);
  }

  /** The delay after `failures` failures so far (0: base delay, then doubling). */
  private backoff(failures: number): number {
    return backoffDelay(this.backoffPolicy, failures + 1);
  }

  private record(a: ArmAttempt): void {
    this.requests.inc({ operation: a.operation, result: a.result });
    this.opts.onAttempt?.(a);
  }
}

function isNetworkError(e: unknown): boolean {
  const r = asRestError(e);
  if (!r) return false;
  const code = r.code ?? '';
  const name = (e as { name?: string }).name ?? '';
  return (
    name === 'AbortError' ||
    name === 'TimeoutError' ||
    /^(ECONNRESET|ECONNREFUSED|ETIMEDOUT|EPIPE|EAI_AGAIN|ENOTFOUND|REQUEST_SEND_ERROR|UND_ERR_\w+)$/.test(code) ||
    (name === 'RestError' && r.statusCode === undefined)
  );
}
