/**
 * Runs every pod bound to this node through the provider.
 *
 * Pods come from an informer (fieldSelector spec.nodeName=<node>, all
 * namespaces); nothing is polled per pod. The Secrets and ConfigMaps the pods
 * reference come from the reference resolver (one watch per referenced object).
 * Every change (pod event, provider status, a referenced Secret or ConfigMap
 * appearing) only enqueues the pod's key; one
 * reconcile per key runs at a time and compares what is wanted with what the
 * provider and the API server have. Status is written only when it differs.
 */
import type * as k8s from '@kubernetes/client-node';
import type { V1Pod } from '@kubernetes/client-node';
import type { BackoffPolicy } from '../common/backoff.js';
import { backoffDelay } from '../common/backoff.js';
import type { Logger } from '../common/logger.js';
import type { ConnectorMetrics } from '../common/metrics.js';
import { describeMissing, resolvePodEnv, type EnvResolution, type MissingRef } from './env.js';
import type { EventSink, EventType } from './events.js';
import { strategicMergePatchOptions } from './events.js';
import { managedInformer, type ManagedInformer } from './informer.js';
import { LifecycleHooks } from './lifecycle-hooks.js';
import type { KubeClients } from './kube-client.js';
import { missingVolumeRefs, podReferences, ReferenceResolver, refKey } from './references.js';
import { ServiceAccountTokens } from './sa-tokens.js';
import { computePodStatus, isTerminal, ownedView, rejectedStatus, statusDiffers, statusPatch } from './pod-status.js';
import {
  PodRejectedError,
  TransientProviderError,
  type PodContext,
  type PodRef,
  type Provider,
  type ProviderPodStatus,
} from './provider.js';
import { WorkQueue } from './work-queue.js';

export interface PodControllerOptions {
  clients: KubeClients;
  provider: Provider;
  nodeName: string;
  nodeIP: string;
  workers: number;
  log: Logger;
  events: EventSink;
  metrics?: ConnectorMetrics;
  /** Node allocatable, for resourceFieldRef of containers without limits. */
  nodeAllocatable?: () => Record<string, string> | undefined;
  backoff?: BackoffPolicy;
}

/** What this process knows the provider may hold for one incarnation (uid) of a pod. */
interface Tracked {
  pod: V1Pod;
  /** createPod succeeded (or the pod was found in the provider at start). */
  created: boolean;
  /** metadata.generation the provider last saw; a newer one is handed to updatePod. */
  generation?: number;
}

/** setTimeout's largest delay (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 250, maxMs: 60_000 };
/** Missing Secrets/ConfigMaps are mainly retried on their watch events; this is the safety net. */
const MISSING_REF_BACKOFF: BackoffPolicy = { baseMs: 1000, maxMs: 30_000 };

export function podKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

function keyOf(pod: V1Pod): string {
  return podKey(pod.metadata?.namespace ?? '', pod.metadata?.name ?? '');
}

function splitKey(key: string): [string, string] {
  const i = key.indexOf('/');
  return [key.slice(0, i), key.slice(i + 1)];
}

function errCode(err: unknown): number | undefined {
  return (err as { code?: number } | undefined)?.code;
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A pod shell good enough for provider.deletePod when only the provider knows the pod. */
function podFromRef(ref: PodRef): V1Pod {
  return { metadata: { namespace: ref.namespace, name: ref.name, uid: ref.uid }, spec: { containers: [] } };
}

export class PodController {
  private readonly queue: WorkQueue<string>;
  private readonly pods: ManagedInformer<V1Pod>;
  /** The Secrets and ConfigMaps the node's pods reference, watched one by one. */
  readonly refs: ReferenceResolver;
  /** Pod-bound ServiceAccount tokens, reused until 80 % of their life. */
  readonly tokens: ServiceAccountTokens;
  /** Per pod uid, the timer that reports a handed-out token passing 80 % of its life in a running pod. */
  private readonly tokenTimers = new Map<string, NodeJS.Timeout>();
  /** postStart and preStop hooks; tied in by three calls: created, observe (syncStatus), beforeDelete (finalizeDeletion). */
  private readonly hooks: LifecycleHooks;
  private readonly tracked = new Map<string, Map<string, Tracked>>();
  private readonly providerStatus = new Map<string, ProviderPodStatus>();
  private readonly lastWritten = new Map<string, { uid: string; view: string; basedOn: string | undefined }>();
  private readonly waitingOn = new Map<string, Set<string>>();
  private readonly notBefore = new Map<string, number>();
  private readonly createFailures = new Map<string, number>();
  private readonly lostAtStart = new Set<string>();
  /** Per key, the uid whose skipped optional references were already reported. */
  private readonly optionalNoted = new Map<string, string>();
  private live = false;
  private stopped = false;
  /** Status patches sent, for the benchmark's writes-per-pod figure. */
  statusWrites = 0;

  constructor(private readonly o: PodControllerOptions) {
    const kc = o.clients.kc;
    const core = o.clients.core;
    const fieldSelector = `spec.nodeName=${o.nodeName}`;
    this.pods = managedInformer<V1Pod>(kc, '/api/v1/pods', () => core.listPodForAllNamespaces({ fieldSelector }), {
      fieldSelector,
      log: o.log,
      what: 'pods',
    });
    this.refs = new ReferenceResolver({
      kc,
      core,
      log: o.log,
      onChange: (kind, namespace, name) => {
        const waiting = this.waitingOn.get(refKey(kind, namespace, name));
        if (waiting && this.live) for (const k of waiting) this.queue.add(k);
      },
    });
    this.tokens = new ServiceAccountTokens(core);
    this.hooks = new LifecycleHooks({ provider: o.provider, event: (pod, type, reason, message) => this.event(pod, type, reason, message), log: o.log });
    this.queue = new WorkQueue<string>({
      concurrency: o.workers,
      backoff: o.backoff ?? DEFAULT_BACKOFF,
      handler: (key) => this.reconcile(key),
      onError: (key, err, failures, retryInMs) => {
        if (this.stopped) return;
        o.log.warn({ pod: key, err: errMessage(err), failures, retryInMs }, 'reconcile failed; will retry');
      },
      onDone: (_key, ms, ok) => o.metrics?.reconcileSeconds.observe({ result: ok ? 'ok' : 'error' }, ms / 1000),
    });

    const onPod = (pod: V1Pod) => {
      if (this.live) this.queue.add(keyOf(pod));
    };
    this.pods.cache.on('add', onPod);
    this.pods.cache.on('update', onPod);
    this.pods.cache.on('delete', onPod);

    o.provider.onStatus((ref, status) => {
      if (this.stopped) return;
      const key = podKey(ref.namespace, ref.name);
      // Statuses of pods we no longer hold (deleted meanwhile) are dropped.
      if (!this.tracked.get(key)?.has(ref.uid)) return;
      this.providerStatus.set(ref.uid, status);
      if (this.live) this.queue.add(key);
    });
  }

  /** A pod bound to this node, from the informer's cache. */
  lookupPod(namespace: string, name: string): V1Pod | undefined {
    return this.pods.cache.get(name, namespace);
  }

  /** Every pod bound to this node, from the informer's cache. */
  listPods(): V1Pod[] {
    return [...this.pods.cache.list()];
  }

  /** Keys waiting in the work queue. */
  get queueDepth(): number {
    return this.queue.depth;
  }

  /** Pods bound to this node, by phase (for the metrics endpoint). */
  podsByPhase(): Record<string, number> {
    const out: Record<string, number> = { Pending: 0, Running: 0, Succeeded: 0, Failed: 0, Unknown: 0 };
    for (const p of this.pods.cache.list()) {
      const phase = p.status?.phase ?? 'Pending';
      out[phase] = (out[phase] ?? 0) + 1;
    }
    return out;
  }

  /**
   * Syncs the caches, reconciles the provider's pods against the API (adopt,
   * delete orphans this node created, fail pods that were running and are
   * lost), then starts processing.
   */
  async start(): Promise<void> {
    await this.pods.start();
    const providerPods = await this.timed('list', () => this.o.provider.listPods());
    const apiByKey = new Map(this.pods.cache.list().map((p) => [keyOf(p), p] as const));
    let adopted = 0;
    let orphans = 0;
    const inProvider = new Set<string>();
    for (const pp of providerPods) {
      const key = podKey(pp.ref.namespace, pp.ref.name);
      const api = apiByKey.get(key);
      const same = api?.metadata?.uid === pp.ref.uid;
      this.track(key, pp.ref.uid, { pod: same && api ? api : podFromRef(pp.ref), created: true, generation: same ? api?.metadata?.generation : undefined });
      this.providerStatus.set(pp.ref.uid, pp.status);
      inProvider.add(pp.ref.uid);
      if (same) adopted++;
      else orphans++;
    }
    let lost = 0;
    for (const p of apiByKey.values()) {
      const uid = p.metadata?.uid ?? '';
      // A pod that was running and whose backend workload is gone must not be silently restarted.
      if (!inProvider.has(uid) && p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp) {
        this.lostAtStart.add(uid);
        lost++;
      }
    }
    this.o.log.info({ apiPods: apiByKey.size, providerPods: providerPods.length, adopted, orphans, lost }, 'initial reconciliation');
    this.live = true;
    for (const key of new Set([...apiByKey.keys(), ...this.tracked.keys()])) this.queue.add(key);
  }

  /** Stops processing. Pods keep running in the provider and stay in the API. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.live = false;
    await this.queue.stop();
    for (const timer of this.tokenTimers.values()) clearTimeout(timer);
    this.tokenTimers.clear();
    await Promise.all([this.pods.stop(), this.refs.stop()]);
  }

  /** Resolves when no work is queued or running (tests and the benchmark). */
  whenIdle(): Promise<void> {
    return this.queue.whenIdle();
  }

  // ---- reconcile -----------------------------------------------------------

  private track(key: string, uid: string, t: Tracked): void {
    let m = this.tracked.get(key);
    if (!m) {
      m = new Map();
      this.tracked.set(key, m);
    }
    m.set(uid, t);
  }

  private untrack(key: string, uid: string): void {
    const m = this.tracked.get(key);
    m?.delete(uid);
    if (m && m.size === 0) this.tracked.delete(key);
    this.providerStatus.delete(uid);
    this.tokens.release(uid);
    this.hooks.forget(uid);
    clearTimeout(this.tokenTimers.get(uid));
    this.tokenTimers.delete(uid);
  }

  private async timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    let result = 'ok';
    try {
      return await fn();
    } catch (err) {
      result = err instanceof PodRejectedError ? 'rejected' : err instanceof TransientProviderError ? 'transient' : 'error';
      throw err;
    } finally {
      this.o.metrics?.providerCallSeconds.observe({ op, result }, (performance.now() - start) / 1000);
    }
  }

  private event(pod: V1Pod, type: EventType, reason: string, message: string): void {
    const m = pod.metadata ?? {};
    this.o.events.record({ namespace: m.namespace ?? '', name: m.name ?? '', uid: m.uid ?? '' }, type, reason, message);
  }

  async reconcile(key: string): Promise<void> {
    if (this.stopped) return;
    const [namespace, name] = splitKey(key);
    const pod = this.pods.cache.get(name, namespace);
    const uid = pod?.metadata?.uid;

    // Older incarnations (or a pod that is gone from the API) leave the provider first.
    for (const [oldUid, t] of [...(this.tracked.get(key) ?? new Map<string, Tracked>())]) {
      if (oldUid === uid) continue;
      await this.timed('delete', () => this.o.provider.deletePod(t.pod, 0));
      this.untrack(key, oldUid);
      this.o.log.info({ pod: key, uid: oldUid }, pod ? 'removed an older incarnation from the provider' : 'pod gone from the API; removed from the provider');
    }
    if (!pod || !uid) {
      this.forget(key);
      return;
    }
    const t = this.tracked.get(key)?.get(uid);
    if (t) t.pod = pod;

    if (pod.metadata?.deletionTimestamp) return this.finalizeDeletion(key, pod, t);

    if (!t && isTerminal(pod.status?.phase)) {
      // Finished: its references are no longer needed, and their watches go when no pod uses them.
      this.refs.release(key);
      return;
    }

    if (!t && this.lostAtStart.has(uid)) {
      this.lostAtStart.delete(uid);
      const msg = 'the pod was running but its workload is gone from the backend; it is not restarted silently';
      await this.writeStatus(key, pod, rejectedStatus(pod, 'ProviderPodLost', msg, this.o.nodeIP));
      this.event(pod, 'Warning', 'ProviderPodLost', msg);
      return;
    }

    if (!t?.created) {
      const created = await this.create(key, pod);
      if (!created) return;
    } else if (pod.metadata?.generation !== undefined && t.generation !== undefined && pod.metadata.generation > t.generation) {
      await this.update(key, pod, t);
    }
    await this.syncStatus(key, pod);
  }

  private forget(key: string): void {
    this.refs.release(key);
    this.lastWritten.delete(key);
    this.optionalNoted.delete(key);
    this.notBefore.delete(key);
    this.createFailures.delete(key);
    for (const [ref, keys] of this.waitingOn) {
      keys.delete(key);
      if (keys.size === 0) this.waitingOn.delete(ref);
    }
  }

  private async finalizeDeletion(key: string, pod: V1Pod, t: Tracked | undefined): Promise<void> {
    const uid = pod.metadata?.uid ?? '';
    if (t) {
      const grace = pod.metadata?.deletionGracePeriodSeconds ?? pod.spec?.terminationGracePeriodSeconds ?? 30;
      // Seam "before delete": preStop hooks within the grace period; the rest of it goes to the provider.
      const left = t.created ? await this.hooks.beforeDelete(pod, this.providerStatus.get(uid), grace) : grace;
      await this.timed('delete', () => this.o.provider.deletePod(pod, left));
      this.untrack(key, uid);
      this.event(pod, 'Normal', 'Killing', 'Stopped the pod in the backend');
    }
    try {
      await this.o.clients.core.deleteNamespacedPod({
        name: pod.metadata?.name ?? '',
        namespace: pod.metadata?.namespace ?? '',
        gracePeriodSeconds: 0,
        body: { gracePeriodSeconds: 0, preconditions: { uid } },
      });
    } catch (err) {
      // Gone already, or a new incarnation took the name: nothing of ours to delete.
      if (errCode(err) !== 404 && errCode(err) !== 409) throw err;
    }
  }

  private waitFor(key: string, namespace: string, missing: MissingRef[]): void {
    for (const m of missing) {
      const ref = refKey(m.kind, namespace, m.name);
      let keys = this.waitingOn.get(ref);
      if (!keys) {
        keys = new Set();
        this.waitingOn.set(ref, keys);
      }
      keys.add(key);
    }
  }

  private context(pod: V1Pod, env: PodContext['env']): PodContext {
    const ns = pod.metadata?.namespace ?? '';
    // Only what this pod references, as the resolver fetched it (a provider never sees other objects).
    const refs = podReferences(pod);
    return {
      env,
      getSecret: async (name) => (refs.secrets.has(name) ? this.refs.getSecret(ns, name) : undefined),
      getConfigMap: async (name) => (refs.configMaps.has(name) ? this.refs.getConfigMap(ns, name) : undefined),
      getServiceAccountToken: (audience, expirationSeconds) => this.tokens.get(pod, audience, expirationSeconds),
      recordEvent: (type, reason, message) => this.event(pod, type, reason, message),
    };
  }

  /**
   * Fetches (and from now on watches) what the pod references, then resolves its env and
   * checks its volumes' mandatory references, all against the same objects.
   */
  private async resolve(key: string, pod: V1Pod): Promise<EnvResolution> {
    await this.refs.use(key, pod);
    const res = resolvePodEnv(pod, {
      getSecret: (n, name) => this.refs.getSecret(n, name),
      getConfigMap: (n, name) => this.refs.getConfigMap(n, name),
      nodeAllocatable: this.o.nodeAllocatable?.(),
      hostIP: this.o.nodeIP,
    });
    res.missing.push(...missingVolumeRefs(pod, this.refs));
    return res;
  }

  /** Creates the pod in the provider. Returns false when it is not (yet) created. */
  private async create(key: string, pod: V1Pod): Promise<boolean> {
    const uid = pod.metadata?.uid ?? '';
    const ns = pod.metadata?.namespace ?? '';
    const gate = this.notBefore.get(key);
    if (gate !== undefined && gate > Date.now()) {
      this.queue.addAfter(key, gate - Date.now());
      return false;
    }
    const res = await this.resolve(key, pod);
    if (res.invalid.length > 0) {
      const first = res.invalid[0] as { field: string; message: string };
      const msg = `${first.field}: ${first.message}`;
      await this.writeStatus(key, pod, rejectedStatus(pod, 'InvalidEnvReference', msg, this.o.nodeIP));
      this.event(pod, 'Warning', 'InvalidEnvReference', msg);
      return false;
    }
    if (res.missing.length > 0) {
      this.waitFor(key, ns, res.missing);
      const msg = res.missing.map((m) => describeMissing(m, ns)).join('; ');
      // Virtual Kubelet's event reasons, which users' alerts key on; the container's waiting
      // reason stays the kubelet's CreateContainerConfigError.
      const byReason = new Map<string, string[]>();
      for (const m of res.missing) {
        const reason = `Mandatory${m.kind}${m.key !== undefined ? 'Key' : ''}NotFound`;
        byReason.set(reason, [...(byReason.get(reason) ?? []), describeMissing(m, ns)]);
      }
      for (const [reason, parts] of byReason) this.event(pod, 'Warning', reason, `Error: ${parts.join('; ')}`);
      const status = computePodStatus(pod, { hostIP: this.o.nodeIP, waiting: { reason: 'CreateContainerConfigError', message: msg } });
      await this.writeStatus(key, pod, status);
      const n = (this.createFailures.get(key) ?? 0) + 1;
      this.createFailures.set(key, n);
      this.queue.addAfter(key, backoffDelay(MISSING_REF_BACKOFF, n));
      return false;
    }
    if (this.optionalNoted.get(key) !== uid) {
      for (const note of res.notes) this.event(pod, 'Warning', note.reason, note.message);
      this.optionalNoted.set(key, uid);
    }
    for (const [ref, keys] of this.waitingOn) {
      keys.delete(key);
      if (keys.size === 0) this.waitingOn.delete(ref);
    }

    // Tracked before the call: if the pod is deleted meanwhile, the backend copy is removed too.
    this.track(key, uid, { pod, created: false, generation: pod.metadata?.generation });
    try {
      await this.timed('create', () => this.o.provider.createPod(pod, this.context(pod, res.env)));
    } catch (err) {
      if (err instanceof PodRejectedError) {
        this.untrack(key, uid);
        const msg = err.field && !err.message.includes(err.field) ? `${err.field}: ${err.message}` : err.message;
        this.o.log.info({ pod: key, reason: err.reason, field: err.field }, 'provider rejected the pod');
        await this.writeStatus(key, pod, rejectedStatus(pod, err.reason, msg, this.o.nodeIP));
        this.event(pod, 'Warning', err.reason, msg);
        return false;
      }
      const n = (this.createFailures.get(key) ?? 0) + 1;
      this.createFailures.set(key, n);
      const transient = err instanceof TransientProviderError;
      const reason = transient ? err.reason : 'ProviderError';
      const delay = Math.max(transient ? (err.retryAfterMs ?? 0) : 0, backoffDelay(this.o.backoff ?? DEFAULT_BACKOFF, n));
      this.notBefore.set(key, Date.now() + delay);
      const msg = `creating the pod in the backend failed (attempt ${n}, retrying in ${Math.round(delay / 1000)} s): ${errMessage(err)}`;
      this.o.log.warn({ pod: key, reason, retryInMs: delay }, msg);
      this.event(pod, 'Warning', reason, msg);
      const status = computePodStatus(pod, { hostIP: this.o.nodeIP, waiting: { reason, message: errMessage(err) } });
      await this.writeStatus(key, pod, status).catch(() => undefined);
      this.queue.addAfter(key, delay);
      return false;
    }
    const t = this.tracked.get(key)?.get(uid);
    if (t) t.created = true;
    this.hooks.created(uid);
    this.event(pod, 'Normal', 'Created', 'Created the pod in the backend');
    this.watchTokenLife(key, uid);
    this.notBefore.delete(key);
    this.createFailures.delete(key);
    return true;
  }

  /**
   * The provider baked the tokens it took into the pod it created. When the first of them
   * passes 80 % of its life (when a kubelet would have refreshed it) while the pod still runs,
   * the pod gets a Warning: the core holds a fresh token for any later create, but a provider
   * has no call to replace a running pod's files (ACI cannot change a running group's volumes
   * without restarting it). Tokens of the kube-api-access volume live a year (the API server's
   * extended expiration), so this speaks only of short-lived tokens a pod asked for explicitly.
   */
  private watchTokenLife(key: string, uid: string): void {
    const issued = this.tokens.issued(uid);
    if (issued.length === 0) return;
    const first = issued.reduce((a, b) => (b.refreshAt < a.refreshAt ? b : a));
    const delay = Math.max(0, first.refreshAt - Date.now());
    if (delay > MAX_TIMER_MS) return; // outlives any timer (and, in practice, the pod)
    clearTimeout(this.tokenTimers.get(uid));
    const timer = setTimeout(() => {
      this.tokenTimers.delete(uid);
      const t = this.tracked.get(key)?.get(uid);
      if (this.stopped || !t?.created) return;
      const aud = first.audience ? `audience ${first.audience}` : 'the API server audience';
      this.event(
        t.pod,
        'Warning',
        'ServiceAccountTokenNotRefreshed',
        `the ServiceAccount token (${aud}) given to the pod passed 80 % of its life and expires at ${new Date(first.expiresAt).toISOString()}; ` +
          'the backend cannot replace the files of a running pod, so re-create the pod before then',
      );
    }, delay);
    timer.unref();
    this.tokenTimers.set(uid, timer);
  }

  /** Hands a spec change (e.g. a new image) to the provider; what it cannot apply it rejects. */
  private async update(key: string, pod: V1Pod, t: Tracked): Promise<void> {
    const res = await this.resolve(key, pod);
    try {
      await this.timed('update', () => this.o.provider.updatePod(pod, this.context(pod, res.env)));
    } catch (err) {
      if (!(err instanceof PodRejectedError)) throw err;
      this.o.log.info({ pod: key, reason: err.reason, field: err.field }, 'provider cannot apply the spec change');
      this.event(pod, 'Warning', err.reason, err.field && !err.message.includes(err.field) ? `${err.field}: ${err.message}` : err.message);
    }
    t.generation = pod.metadata?.generation;
  }

  private async syncStatus(key: string, pod: V1Pod): Promise<void> {
    const uid = pod.metadata?.uid ?? '';
    const ps = this.providerStatus.get(uid);
    if (!ps) return; // the provider pushes a status when it has one
    // Seam "after a container is first seen running": its postStart hook.
    this.hooks.observe(pod, ps);
    const status = computePodStatus(pod, { provider: ps, hostIP: this.o.nodeIP });
    await this.writeStatus(key, pod, status);
  }

  private async writeStatus(key: string, pod: V1Pod, status: k8s.V1PodStatus): Promise<void> {
    const uid = pod.metadata?.uid ?? '';
    const rv = pod.metadata?.resourceVersion;
    const view = ownedView(status);
    if (!statusDiffers(pod.status, status)) return;
    // Our last write is not in the informer's copy yet (same resourceVersion as when we wrote):
    // writing again would only repeat it. Once the copy moved on, it is the truth, even if
    // someone else (the node lifecycle controller) changed our fields since.
    const last = this.lastWritten.get(key);
    if (last && last.uid === uid && last.view === view && last.basedOn === rv) return;
    if (this.o.log.isLevelEnabled('trace')) {
      this.o.log.trace({ pod: key, rv, lastBasedOn: last?.basedOn, current: ownedView(pod.status), next: view }, 'writing pod status');
    }
    try {
      await this.o.clients.core.patchNamespacedPodStatus(
        { name: pod.metadata?.name ?? '', namespace: pod.metadata?.namespace ?? '', body: statusPatch(uid, status) },
        strategicMergePatchOptions(),
      );
    } catch (err) {
      if (errCode(err) === 404) return;
      throw err;
    }
    this.statusWrites++;
    this.o.metrics?.statusWrites.inc();
    this.lastWritten.set(key, { uid, view, basedOn: rv });
  }
}
