/**
 * Records core/v1 Events on pods (what `kubectl describe pod` shows).
 * Events are best effort, as in a kubelet, and come after pod work:
 * - they go through their own client, queue and rate limit, and while pod work is pending
 *   (`busy`) they wait, up to `maxDeferMs`, so status writes have the API server first;
 * - an Event still waiting in the queue absorbs its repeats (one write for them all);
 * - as client-go's EventCorrelator: a repeat within ten minutes bumps the count of the
 *   existing Event instead of creating a new one; from the 10th distinct message of the
 *   same pod, type and reason within ten minutes they are combined into one Event
 *   ("(combined from similar events): …"); and each pod has a token bucket (25, one more
 *   every 5 minutes) so a flapping pod cannot flood the API server;
 * - when the backlog is full new events are dropped.
 */
import { MERGE_PATCH, STRATEGIC_MERGE_PATCH, type CoreApi, type PatchType } from './kube/apis.js';
import type { Logger } from '../common/logger.js';
import { errorMessage } from '../common/errors.js';

export type EventType = 'Normal' | 'Warning';

export interface InvolvedPod {
  namespace: string;
  name: string;
  uid: string;
}

export interface EventSink {
  record(pod: InvolvedPod, type: EventType, reason: string, message: string): void;
}

export interface EventRecorderOptions {
  /** Sending waits while this is true (pod work pending), at most maxDeferMs after recording. */
  busy?: () => boolean;
  maxDeferMs?: number;
  now?: () => number;
}

const REPEAT_WINDOW_MS = 10 * 60_000;
const MAX_BACKLOG = 2000;
const MAX_REMEMBERED = 5000;
/** client-go's EventAggregator: maxEvents similar events before they are combined. */
const AGGREGATE_AFTER = 10;
const AGGREGATE_PREFIX = '(combined from similar events): ';
/** client-go's EventSourceObjectSpamFilter: a burst of 25 per object, one more every 5 minutes. */
const SPAM_BURST = 25;
const SPAM_REFILL_MS = 5 * 60_000;
const DEFAULT_MAX_DEFER_MS = 2000;
const DEFER_POLL_MS = 50;

interface Seen {
  name: string;
  count: number;
  at: number;
}

interface Pending {
  key: string;
  pod: InvolvedPod;
  type: EventType;
  reason: string;
  message: string;
  /** Occurrences this one write stands for (repeats absorbed while it waited). */
  times: number;
  recordedAt: number;
}

interface Similar {
  messages: Set<string>;
  at: number;
}

interface Tokens {
  tokens: number;
  at: number;
}

/** Keeps a Map at most `max` entries, dropping the oldest inserted (Maps iterate in insertion order). */
function remember<K, V>(map: Map<K, V>, key: K, value: V, max = MAX_REMEMBERED): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
}

export class EventRecorder implements EventSink {
  private readonly backlog: Pending[] = [];
  private readonly pending = new Map<string, Pending>();
  private readonly seen = new Map<string, Seen>();
  private readonly similar = new Map<string, Similar>();
  private readonly spam = new Map<string, Tokens>();
  private running = 0;
  private closed = false;
  private flushing = false;
  private deferTimer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  dropped = 0;

  constructor(
    private readonly core: Pick<CoreApi, 'createNamespacedEvent' | 'patchNamespacedEvent'>,
    private readonly nodeName: string,
    private readonly log: Logger,
    private readonly concurrency = 4,
    private readonly opts: EventRecorderOptions = {},
  ) {
    this.now = opts.now ?? Date.now;
  }

  record(pod: InvolvedPod, type: EventType, reason: string, message: string): void {
    if (this.closed) return;
    const now = this.now();
    if (!this.allow(pod.uid, now)) {
      this.dropped++;
      return;
    }
    // EventAggregator: similar events (same pod, type and reason) with many messages become one.
    const simKey = `${pod.uid}\u0000${type}\u0000${reason}`;
    let sim = this.similar.get(simKey);
    if (!sim || now - sim.at > REPEAT_WINDOW_MS) sim = { messages: new Set(), at: now };
    sim.at = now;
    let key = `${simKey}\u0000${message}`;
    if (!sim.messages.has(message)) {
      if (sim.messages.size >= AGGREGATE_AFTER - 1) {
        key = `${simKey}\u0000${AGGREGATE_PREFIX}`;
        message = AGGREGATE_PREFIX + message;
      } else sim.messages.add(message);
    }
    remember(this.similar, simKey, sim);

    const waiting = this.pending.get(key);
    if (waiting) {
      waiting.times++;
      waiting.message = message;
      return;
    }
    if (this.backlog.length >= MAX_BACKLOG) {
      this.dropped++;
      return;
    }
    const p: Pending = { key, pod, type, reason, message, times: 1, recordedAt: now };
    this.backlog.push(p);
    this.pending.set(key, p);
    this.pump();
  }

  /** Waits until every queued event was sent (for orderly shutdown); pod work no longer defers them. */
  async flush(timeoutMs = 5000): Promise<void> {
    this.flushing = true;
    this.pump();
    const deadline = Date.now() + timeoutMs;
    while ((this.backlog.length > 0 || this.running > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    this.flushing = false;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.deferTimer);
  }

  /** The per-pod token bucket of client-go's spam filter. */
  private allow(uid: string, now: number): boolean {
    let t = this.spam.get(uid);
    if (!t) t = { tokens: SPAM_BURST, at: now };
    else {
      const refill = Math.floor((now - t.at) / SPAM_REFILL_MS);
      if (refill > 0) t = { tokens: Math.min(SPAM_BURST, t.tokens + refill), at: t.at + refill * SPAM_REFILL_MS };
    }
    if (t.tokens < 1) {
      remember(this.spam, uid, t);
      return false;
    }
    t.tokens--;
    remember(this.spam, uid, t);
    return true;
  }

  private deferred(): boolean {
    const first = this.backlog[0];
    if (this.flushing || !first || !this.opts.busy?.()) return false;
    return this.now() - first.recordedAt < (this.opts.maxDeferMs ?? DEFAULT_MAX_DEFER_MS);
  }

  private pump(): void {
    if (this.closed && !this.flushing) return;
    while (this.running < this.concurrency && this.backlog.length > 0) {
      if (this.deferred()) {
        this.deferTimer ??= setTimeout(() => {
          this.deferTimer = undefined;
          this.pump();
        }, DEFER_POLL_MS);
        return;
      }
      const p = this.backlog.shift() as Pending;
      this.pending.delete(p.key);
      this.running++;
      void this.send(p)
        .catch((err: unknown) => this.log.debug({ err: errorMessage(err) }, 'event not recorded'))
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }

  private async send(p: Pending): Promise<void> {
    const { key, pod, type, reason, message } = p;
    const now = new Date(this.now());
    const prev = this.seen.get(key);
    if (prev && now.getTime() - prev.at < REPEAT_WINDOW_MS) {
      prev.count += p.times;
      prev.at = now.getTime();
      try {
        await this.core.patchNamespacedEvent(
          {
            name: prev.name,
            namespace: pod.namespace,
            body: {
              count: prev.count,
              lastTimestamp: now,
              ...(message.startsWith(AGGREGATE_PREFIX) ? { message } : {}),
            },
          },
          mergePatchOptions(),
        );
        return;
      } catch {
        // The Event may have expired; fall through and create a new one.
      }
    }
    // client-go names an Event <object>.<UnixNano in hex>; a pod's events often come in the same ms
    // (ACI reports Pulling, Pulled, Created and Started together), so a per-process sequence fills the
    // sub-millisecond digits: a random suffix collided (409 AlreadyExists) about once per 1,000 pods.
    const unique = BigInt(now.getTime()) * 1_000_000n + BigInt(nextSequence());
    const name = `${pod.name}.${unique.toString(16)}`;
    // Remembered before the create lands, so a repeat sent meanwhile patches it instead of creating another.
    const entry: Seen = { name, count: p.times, at: now.getTime() };
    remember(this.seen, key, entry);
    try {
      await this.core.createNamespacedEvent({
        namespace: pod.namespace,
        body: {
          metadata: { name, namespace: pod.namespace },
          involvedObject: { kind: 'Pod', apiVersion: 'v1', namespace: pod.namespace, name: pod.name, uid: pod.uid },
          type,
          reason,
          message,
          count: p.times,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: 'aci-connector', host: this.nodeName },
          reportingComponent: 'aci-connector',
          reportingInstance: this.nodeName,
        },
      });
    } catch (err) {
      if (this.seen.get(key) === entry) this.seen.delete(key);
      throw err;
    }
  }
}

let sequence = 0;
function nextSequence(): number {
  sequence = (sequence + 1) % 1_000_000;
  return sequence;
}

export function mergePatchOptions(): PatchType {
  return MERGE_PATCH;
}

export function strategicMergePatchOptions(): PatchType {
  return STRATEGIC_MERGE_PATCH;
}
