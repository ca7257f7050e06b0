/**
 * Records core/v1 Events on pods (what `kubectl describe pod` shows).
 * Events are best effort, as in a kubelet: they go through their own queue and
 * rate limit so they never slow pod work, repeats within ten minutes bump the
 * count of the existing Event instead of creating a new one, and when the
 * backlog is full new events are dropped.
 */
import type * as k8s from '@kubernetes/client-node';
import { PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
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

const REPEAT_WINDOW_MS = 10 * 60_000;
const MAX_BACKLOG = 2000;
const MAX_REMEMBERED = 5000;

interface Seen {
  name: string;
  count: number;
  first: Date;
  at: number;
}

export class EventRecorder implements EventSink {
  private readonly backlog: Array<() => Promise<void>> = [];
  private readonly seen = new Map<string, Seen>();
  private running = 0;
  private closed = false;
  dropped = 0;

  constructor(
    private readonly core: k8s.CoreV1Api,
    private readonly nodeName: string,
    private readonly log: Logger,
    private readonly concurrency = 4,
  ) {}

  record(pod: InvolvedPod, type: EventType, reason: string, message: string): void {
    if (this.closed) return;
    if (this.backlog.length >= MAX_BACKLOG) {
      this.dropped++;
      return;
    }
    const key = `${pod.uid}\u0000${type}\u0000${reason}\u0000${message}`;
    this.backlog.push(() => this.send(key, pod, type, reason, message));
    this.pump();
  }

  /** Waits until every queued event was sent (for orderly shutdown). */
  async flush(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.backlog.length > 0 || this.running > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.closed = true;
  }

  private pump(): void {
    while (this.running < this.concurrency && this.backlog.length > 0) {
      const job = this.backlog.shift() as () => Promise<void>;
      this.running++;
      void job()
        .catch((err: unknown) => this.log.debug({ err: errorMessage(err) }, 'event not recorded'))
        .finally(() => {
          this.running--;
          this.pump();
        });
    }
  }

  private async send(key: string, pod: InvolvedPod, type: EventType, reason: string, message: string): Promise<void> {
    const now = new Date();
    const prev = this.seen.get(key);
    if (prev && Date.now() - prev.at < REPEAT_WINDOW_MS) {
      prev.count++;
      prev.at = Date.now();
      try {
        await this.core.patchNamespacedEvent(
          { name: prev.name, namespace: pod.namespace, body: { count: prev.count, lastTimestamp: now } },
          mergePatchOptions(),
        );
        return;
      } catch {
        // The Event may have expired; fall through and create a new one.
      }
    }
    const name = `${pod.name}.${Date.now().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`;
    await this.core.createNamespacedEvent({
      namespace: pod.namespace,
      body: {
        metadata: { name, namespace: pod.namespace },
        involvedObject: { kind: 'Pod', apiVersion: 'v1', namespace: pod.namespace, name: pod.name, uid: pod.uid },
        type,
        reason,
        message,
        count: 1,
        firstTimestamp: now,
        lastTimestamp: now,
        source: { component: 'aci-connector', host: this.nodeName },
        reportingComponent: 'aci-connector',
        reportingInstance: this.nodeName,
      },
    });
    this.seen.set(key, { name, count: 1, first: now, at: Date.now() });
    if (this.seen.size > MAX_REMEMBERED) {
      const oldest = this.seen.keys().next().value;
      if (oldest !== undefined) this.seen.delete(oldest);
    }
  }
}

export function mergePatchOptions(): ReturnType<typeof setHeaderOptions> {
  return setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
}

export function strategicMergePatchOptions(): ReturnType<typeof setHeaderOptions> {
  return setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch);
}
