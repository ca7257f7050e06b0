/**
 * In-memory stand-ins for the pod controller's dependencies (unit tests only): a pod source
 * that behaves like an informer, a pod writer that applies its writes to that source (with a
 * new resourceVersion, as the API server does), an event sink and a reference source.
 */
import type { V1ConfigMap, V1Pod, V1Secret } from '@kubernetes/client-node';
import type { EventSink, EventType, InvolvedPod } from '../../src/core/events.js';
import type { PodSource, PodSourceEvent, PodWriter, ReferenceSource } from '../../src/core/pods/deps.js';
import { podReferences } from '../../src/core/references.js';

export class FakePods implements PodSource {
  private readonly pods = new Map<string, V1Pod>();
  private readonly handlers: Record<PodSourceEvent, Array<(p: V1Pod) => void>> = { add: [], update: [], delete: [] };
  private rv = 1;
  private pending = 0;

  get(namespace: string, name: string): V1Pod | undefined {
    return this.pods.get(`${namespace}/${name}`);
  }
  list(): V1Pod[] {
    return [...this.pods.values()];
  }
  on(event: PodSourceEvent, handler: (p: V1Pod) => void): void {
    this.handlers[event].push(handler);
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}

  /** Adds or replaces the pod (a new resourceVersion), notifying like an informer (at once, or on the next turn when `later`). */
  put(pod: V1Pod, later = false): V1Pod {
    const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    const existed = this.pods.has(key);
    const copy = structuredClone(pod);
    copy.metadata = { ...copy.metadata, resourceVersion: String(++this.rv) };
    this.pods.set(key, copy);
    const notify = () => {
      for (const h of this.handlers[existed ? 'update' : 'add']) h(copy);
    };
    if (later) {
      this.pending++;
      setImmediate(() => {
        this.pending--;
        notify();
      });
    } else notify();
    return copy;
  }
  /** Changes the stored pod in place of an update from someone else. */
  change(namespace: string, name: string, fn: (p: V1Pod) => void, later = false): V1Pod {
    const p = structuredClone(this.get(namespace, name));
    if (!p) throw new Error(`no pod ${namespace}/${name}`);
    fn(p);
    return this.put(p, later);
  }
  /** Resolves once every deferred notification was delivered. */
  async delivered(): Promise<void> {
    while (this.pending > 0) await new Promise((r) => setImmediate(r));
  }
  remove(namespace: string, name: string): void {
    const p = this.get(namespace, name);
    if (!p) return;
    this.pods.delete(`${namespace}/${name}`);
    for (const h of this.handlers.delete) h(p);
  }
}

export class FakeWriter implements PodWriter {
  readonly patches: Array<{ name: string; uid: string; status: { phase?: string; reason?: string } }> = [];
  readonly deletes: Array<{ namespace: string; name: string; uid: string; found: boolean }> = [];
  /** When false, a delete is acknowledged but the pod stays in the source (a lagging watch). */
  removeOnDelete = true;

  constructor(private readonly pods: FakePods) {}

  async patchStatus(pod: V1Pod, body: object): Promise<string | undefined> {
    const ns = pod.metadata?.namespace ?? '';
    const name = pod.metadata?.name ?? '';
    const current = this.pods.get(ns, name);
    if (!current) return undefined;
    const status = (body as { status: V1Pod['status'] }).status ?? {};
    this.patches.push({
      name,
      uid: current.metadata?.uid ?? '',
      status: { phase: status.phase, reason: status.reason },
    });
    // The watch event of the write comes after its response, as from an API server.
    const next = this.pods.change(
      ns,
      name,
      (p) => {
        p.status = { ...p.status, ...status };
      },
      true,
    );
    return next.metadata?.resourceVersion;
  }

  async deletePod(namespace: string, name: string, uid: string): Promise<void> {
    const current = this.pods.get(namespace, name);
    const found = current?.metadata?.uid === uid;
    this.deletes.push({ namespace, name, uid, found });
    if (found && this.removeOnDelete) this.pods.remove(namespace, name);
  }
}

export interface RecordedEvent {
  /** Status writes done when the event was recorded (to check an event never goes out before its pass's write). */
  writesBefore: number;
  pod: InvolvedPod;
  type: EventType;
  reason: string;
  message: string;
}

export class FakeEvents implements EventSink {
  readonly list: RecordedEvent[] = [];
  constructor(private readonly writer?: FakeWriter) {}
  record(pod: InvolvedPod, type: EventType, reason: string, message: string): void {
    this.list.push({ writesBefore: this.writer?.patches.length ?? 0, pod, type, reason, message });
  }
  reasons(name?: string): string[] {
    return this.list.filter((e) => name === undefined || e.pod.name === name).map((e) => e.reason);
  }
}

export class FakeRefs implements ReferenceSource {
  readonly secrets = new Map<string, V1Secret>();
  readonly configMaps = new Map<string, V1ConfigMap>();
  readonly users = new Map<string, Set<string>>();

  async use(podKey: string, pod: V1Pod): Promise<void> {
    const r = podReferences(pod);
    this.users.set(podKey, new Set([...r.secrets, ...r.configMaps]));
  }
  release(podKey: string): void {
    this.users.delete(podKey);
  }
  getSecret(namespace: string, name: string): V1Secret | undefined {
    return this.secrets.get(`${namespace}/${name}`);
  }
  getConfigMap(namespace: string, name: string): V1ConfigMap | undefined {
    return this.configMaps.get(`${namespace}/${name}`);
  }
}

let uidCounter = 0;

export function newUid(): string {
  return `uid-${++uidCounter}-${Math.random().toString(36).slice(2, 8)}`;
}

export function aPod(
  name: string,
  extra: {
    uid?: string;
    spec?: Partial<NonNullable<V1Pod['spec']>>;
    status?: V1Pod['status'];
    annotations?: Record<string, string>;
  } = {},
): V1Pod {
  return {
    metadata: {
      namespace: 'ns',
      name,
      uid: extra.uid ?? newUid(),
      generation: 1,
      ...(extra.annotations ? { annotations: extra.annotations } : {}),
    },
    spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'nginx' }], ...extra.spec },
    status: extra.status ?? { phase: 'Pending' },
  };
}
