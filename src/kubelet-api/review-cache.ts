/**
 * A bounded, expiring cache of review answers (TokenReviews, SubjectAccessReviews),
 * as the kubelet keeps them: each answer lives for a time that depends on the
 * answer (an allowance longer than a denial), the oldest entries go first when
 * the cache is full, concurrent asks for the same key share one review, and a
 * failed review is never cached. lru-cache does the bounding, expiry and sharing.
 */
import { LRUCache } from 'lru-cache';

export interface ReviewCacheOptions<I, V extends object> {
  /** Entries kept at most. */
  max: number;
  /** How long an answer is kept, by answer. */
  ttlMs: (answer: V) => number;
  /** Asks the API server. */
  review: (input: I) => Promise<V>;
  /** Milliseconds clock (tests). */
  now?: () => number;
}

export class ReviewCache<I, V extends object> {
  private readonly cache: LRUCache<string, V, I>;
  /** Reviews actually sent (tests, metrics). */
  reviews = 0;

  constructor(private readonly o: ReviewCacheOptions<I, V>) {
    this.cache = new LRUCache<string, V, I>({
      max: o.max,
      // Every entry gets its own TTL below; this default only enables TTL tracking.
      ttl: 60_000,
      // Read the clock on every look-up (lru-cache otherwise caches it for 1 ms with a timer).
      ttlResolution: 0,
      ...(o.now ? { perf: { now: o.now } } : {}),
      fetchMethod: async (_key, _stale, { options, context }) => {
        this.reviews++;
        const answer = await o.review(context);
        options.ttl = Math.max(1, o.ttlMs(answer));
        return answer;
      },
    });
  }

  async get(key: string, input: I): Promise<V> {
    // The context type is generic here, which lru-cache's conditional overloads cannot resolve.
    const fetch = this.cache.fetch.bind(this.cache) as (k: string, o: { context: I }) => Promise<V | undefined>;
    const answer = await fetch(key, { context: input });
    // fetchMethod never resolves undefined (review returns a V or throws).
    if (answer === undefined) throw new Error('review returned no answer');
    return answer;
  }

  get size(): number {
    return this.cache.size;
  }
}
