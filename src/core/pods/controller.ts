/**
 * Runs every pod bound to this node through the provider.
 *
 * Every change (a pod in the pod source, a provider status, a referenced Secret or ConfigMap
 * appearing) only enqueues the pod's key; one pass per key runs at a time. A pass asks the
 * pure decision step (decide.ts) what to do, runs that outcome's effect here, and asks again
 * until an outcome ends the pass. Status is written only when it differs. Retries go through
 * the work queue's rate limiting; a create that must wait is re-queued, never awaited.
 *
 * Where to extend (probes, lifecycle hooks, stats):
 * - per-pod sub-state: a field of Incarnation or PodRecord (record.ts);
 * - "after the containers run": in `applyStatus` below, where a provider status is taken in;
 * - "before delete": in `effect()`'s `Delete` and `RemoveOld` cases, before provider.deletePod.
 */
import type { V1Pod, V1PodStatus } from '@kubernetes/client-node';
import { backoffDelay, sleep, type BackoffPolicy } from '../../common/backoff.js';
import type { Logger } from '../../common/logger.js';
import type { ConnectorMetrics } from '../../common/metrics.js';
import { resolvePodEnv, type EnvNote, type EnvResolution } from '../env.js';
import type { EventSink } from '../events.js';
import { computePodStatus, ownedView, rejectedStatus, statusPatch } from '../pod-status.js';
import {
  PodRejectedError,
  ProviderDeferredError,
  TransientProviderError,
  type PodContext,
  type HealthStatus,
  type PodRef,
  type Provider,
  type ProviderEvent,
  type ProviderPod,
  type ProviderPodStatus,
} from '../provider.js';
import { missingVolumeRefs, podReferences, refKey, type RefKind } from '../references.js';
import { kubeletResources, resolveVolumeFiles } from '../volume-files.js';
import { WorkQueue } from '../work-queue.js';
import type { Prober } from '../probes/prober.js';
import { proberFor } from '../probes/seam.js';
import { LifecycleHooks } from '../lifecycle-hooks.js';
import { reconcile, statusNeedsWrite, type EventSpec, type Observed, type Outcome } from './decide.js';
import type { PodSource, PodWriter, ReferenceSource, TokenSource } from './deps.js';
import { newRecord, podKey, type Incarnation, type PodRecord } from './record.js';

export interface PodControllerOptions {
  provider: Provider;
  pods: PodSource;
  writer: PodWriter;
  events: EventSink;
  refs: ReferenceSource;
  tokens?: TokenSource;
  nodeIP: string;
  workers: number;
  log: Logger;
  metrics?: ConnectorMetrics;
  /** Node allocatable, for resourceFieldRef of containers without limits; awaited before the first pod is admitted. */
  allocatable?: () => Promise<Record<string, string> | undefined>;
  backoff?: BackoffPolicy;
  /** Retries of the first list of the provider's pods (default 1 s doubling to 30 s). */
  startBackoff?: BackoffPolicy;
  /** Told each time the first list fails (the node's Ready reason follows); start() resolving tells the success. */
  onStartupChange?: () => void;
  now?: () => number;
}

/** setTimeout's largest delay (about 24.8 days). */
const MAX_TIMER_MS = 2 ** 31 - 1;
const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 250, maxMs: 60_000 };
const START_BACKOFF: BackoffPolicy = { baseMs: 1_000, maxMs: 30_000 };
/** Missing Secrets/ConfigMaps are mainly retried on their watch events; this is the safety net's shortest delay. */
const MISSING_REF_MIN_MS = 1000;

function keyOf(pod: V1Pod): string {
  return podKey(pod.metadata?.namespace ?? '', pod.metadata?.name ?? '');
}

function errMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A pod shell good enough for provider.deletePod when only the provider knows the pod. */
function podFromRef(ref: PodRef): V1Pod {
  return { metadata: { namespace: ref.namespace, name: ref.name, uid: ref.uid }, spec: { containers: [] } };
}

function rejectionMessage(err: PodRejectedError): string {
  return err.field && !err.message.includes(err.field) ? `${err.field}: ${err.message}` : err.message;
}

export class PodController {
  private readonly queue: WorkQueue<string>;
  private readonly records = new Map<string, PodRecord>();
  /**
   * Events raised during a pass, per key, sent when the pass ends: an Event never goes out
   * ahead of the pass's status write (events also have their own client and budget).
   */
  private readonly passEvents = new Map<string, Array<{ pod: V1Pod; e: EventSpec }>>();
  private allocatable: Record<string, string> | undefined;
  private live = false;
  private stopped = false;
  private readonly stopping = new AbortController();
  /** Why the pods are not reconciled with the backend yet; undefined once they are. */
  private unsynced: HealthStatus | undefined = {
    ok: false,
    reason: 'ProviderNotSynced',
    message: "the connector is listing the provider's pods",
  };
  private readonly now: () => number;
  /** Status patches sent, for the benchmark's writes-per-pod figure and the tests. */
  statusWrites = 0;

  /** Runs the probes the backend cannot (core/probes): synced each pass, forgotten with the incarnation. */
  private readonly prober: Prober;
  /** postStart and preStop hooks (core/lifecycle-hooks): created after a create, observed each pass, before a delete. */
  private readonly hooks: LifecycleHooks;

  constructor(private readonly o: PodControllerOptions) {
    this.now = o.now ?? Date.now;
    this.queue = new WorkQueue<string>({
      concurrency: o.workers,
      backoff: o.backoff ?? DEFAULT_BACKOFF,
      // A pass that ends waiting (Hold, Wait, a transient failure) keeps the key's backoff; sync() forgets the rest.
      forgetOnSuccess: false,
      handler: (key) => this.sync(key),
      onError: (key, err, failures, retryInMs) => {
        if (this.stopped) return;
        o.log.warn({ pod: key, err: errMessage(err), failures, retryInMs }, 'reconcile failed; will retry');
      },
      onDone: (_key, ms, ok) => o.metrics?.reconcileSeconds.observe({ result: ok ? 'ok' : 'error' }, ms / 1000),
    });

    o.pods.on('add', (pod) => this.enqueue(keyOf(pod)));
    o.pods.on('delete', (pod) => this.enqueue(keyOf(pod)));
    o.pods.on('update', (pod) => {
      // The watch event of our own status write changes nothing we would act on.
      const last = this.records.get(keyOf(pod))?.lastWrite;
      if (last?.produced !== undefined && last.produced === pod.metadata?.resourceVersion) return;
      this.enqueue(keyOf(pod));
    });
    o.provider.onStatus((ref, status) => this.applyStatus(ref, status));
    o.provider.onEvent((ref, ev) => this.providerEvent(ref, ev));
    this.prober = proberFor(o.provider, {
      event: (ref, type, reason, message) => o.events.record(ref, type, reason, message),
      changed: (ref) => {
        const r = this.records.get(podKey(ref.namespace, ref.name));
        if (r?.incarnations.has(ref.uid)) this.enqueue(r.key);
      },
      log: o.log,
    });
    this.hooks = new LifecycleHooks({
      provider: o.provider,
      event: (pod, type, reason, message) => this.event(pod, { type, reason, message }),
      changed: (ref) => {
        const r = this.records.get(podKey(ref.namespace, ref.name));
        if (r?.incarnations.has(ref.uid)) this.enqueue(r.key);
      },
      log: o.log,
    });
  }

  /** A pod bound to this node, from the pod source. */
  lookupPod(namespace: string, name: string): V1Pod | undefined {
    return this.o.pods.get(namespace, name);
  }

  /** Every pod bound to this node, from the pod source. */
  listPods(): V1Pod[] {
    return [...this.o.pods.list()];
  }

  /** Keys waiting in the work queue. */
  get queueDepth(): number {
    return this.queue.depth;
  }

  /** Pods bound to this node, by phase (for the metrics endpoint). */
  podsByPhase(): Record<string, number> {
    const out: Record<string, number> = { Pending: 0, Running: 0, Succeeded: 0, Failed: 0, Unknown: 0 };
    for (const p of this.o.pods.list()) {
      const phase = p.status?.phase ?? 'Pending';
      out[phase] = (out[phase] ?? 0) + 1;
    }
    return out;
  }

  /** A referenced Secret or ConfigMap appeared, changed or went away: the pods waiting for it try again. */
  referenceChanged(kind: RefKind, namespace: string, name: string): void {
    if (!this.live) return;
    const ref = refKey(kind, namespace, name);
    for (const r of this.records.values()) if (r.waitingOn.has(ref)) this.queue.add(r.key);
  }

  /**
   * Syncs the pod source, learns the node's allocatable, reconciles the provider's pods
   * against the API (adopt, delete orphans this node created, fail pods that were running
   * and are lost), then starts processing.
   */
  async start(): Promise<void> {
    // The backend's first list, the API's list of the node's pods and allocatable run together.
    // The node may be Ready once the backend has answered (what its Ready reports): with thousands
    // of pods bound, the API's list takes a second or more, and nothing is acted on before both.
    const listed = this.firstList().then((pods) => {
      if (pods !== undefined && !this.stopped) {
        this.unsynced = undefined;
        this.o.onStartupChange?.();
      }
      return pods;
    });
    const [providerPods] = await Promise.all([
      listed,
      this.o.pods.start(),
      (async () => {
        this.allocatable = await this.o.allocatable?.();
      })(),
    ]);
    if (providerPods === undefined || this.stopped) return;
    const apiByKey = new Map(this.o.pods.list().map((p) => [keyOf(p), p] as const));
    let adopted = 0;
    let orphans = 0;
    const inProvider = new Set<string>();
    for (const pp of providerPods) {
      const r = this.record(pp.ref.namespace, pp.ref.name);
      const api = apiByKey.get(r.key);
      const same = api?.metadata?.uid === pp.ref.uid;
      r.incarnations.set(pp.ref.uid, {
        uid: pp.ref.uid,
        pod: same && api ? api : podFromRef(pp.ref),
        created: true,
        generation: same ? api?.metadata?.generation : undefined,
        providerStatus: pp.status,
      });
      inProvider.add(pp.ref.uid);
      if (same) adopted++;
      else orphans++;
    }
    let lost = 0;
    for (const p of apiByKey.values()) {
      const uid = p.metadata?.uid ?? '';
      // A pod that was running and whose backend workload is gone must not be silently restarted.
      if (!inProvider.has(uid) && p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp) {
        this.record(p.metadata?.namespace ?? '', p.metadata?.name ?? '').lostAtStart.add(uid);
        lost++;
      }
    }
    this.o.log.info(
      { apiPods: apiByKey.size, providerPods: providerPods.length, adopted, orphans, lost },
      'initial reconciliation',
    );
    this.live = true;
    for (const key of new Set([...apiByKey.keys(), ...this.records.keys()])) this.queue.add(key);
  }

  /** Why the node may not be Ready yet: its pods are not reconciled with the backend. */
  get startupHealth(): HealthStatus | undefined {
    return this.unsynced;
  }

  /**
   * The provider's pods, retried with backoff until the backend answers (undefined if stopped
   * meanwhile). Nothing is created or deleted before this list: without it, adopting, cleaning
   * orphans and marking lost pods would act on a guess.
   */
  private async firstList(): Promise<ProviderPod[] | undefined> {
    for (let failures = 0; !this.stopped;) {
      try {
        return await this.timed('list', () => this.o.provider.listPods());
      } catch (err) {
        if (this.stopped) return undefined;
        const retryInMs = backoffDelay(this.o.startBackoff ?? START_BACKOFF, ++failures);
        const msg = (errMessage(err).split('\n')[0] ?? '').slice(0, 300);
        this.unsynced = {
          ok: false,
          reason: 'ProviderUnavailable',
          message: `the provider's pods could not be listed, so none is started or deleted yet: ${msg}`,
        };
        this.o.log.warn(
          { err: errMessage(err), failures, retryInMs },
          "listing the provider's pods failed; will retry",
        );
        this.o.onStartupChange?.();
        await sleep(retryInMs, this.stopping.signal);
      }
    }
    return undefined;
  }

  /** Stops processing. Pods keep running in the provider and stay in the API. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    this.live = false;
    this.prober.close();
    await this.queue.stop();
    for (const r of this.records.values()) for (const inc of r.incarnations.values()) clearTimeout(inc.tokenTimer);
    await this.o.pods.stop();
  }

  /** Resolves when no work is queued or running (tests and the benchmark). */
  whenIdle(): Promise<void> {
    return this.queue.whenIdle();
  }

  // ---- inputs --------------------------------------------------------------

  private enqueue(key: string): void {
    if (this.live) this.queue.add(key);
  }

  private record(namespace: string, name: string): PodRecord {
    const key = podKey(namespace, name);
    let r = this.records.get(key);
    if (!r) {
      r = newRecord(namespace, name);
      this.records.set(key, r);
    }
    return r;
  }

  private applyStatus(ref: PodRef, status: ProviderPodStatus): void {
    if (this.stopped) return;
    const r = this.records.get(podKey(ref.namespace, ref.name));
    const inc = r?.incarnations.get(ref.uid);
    // Statuses of pods we no longer hold (deleted meanwhile) are dropped.
    if (!r || !inc) return;
    inc.providerStatus = status;
    this.enqueue(r.key);
  }

  /** Backend events for any pod we hold, adopted ones included (they never passed through createPod). */
  private providerEvent(ref: PodRef, ev: ProviderEvent): void {
    if (this.stopped) return;
    const held = this.records.get(podKey(ref.namespace, ref.name))?.incarnations.has(ref.uid) === true;
    if (held || this.o.pods.get(ref.namespace, ref.name)?.metadata?.uid === ref.uid)
      this.o.events.record(ref, ev.type, ev.reason, ev.message);
  }

  // ---- one pass --------------------------------------------------------------

  /** One pass over a key: decide, act, repeat until an outcome ends it. */
  async sync(key: string): Promise<void> {
    if (this.stopped) return;
    const events: Array<{ pod: V1Pod; e: EventSpec }> = [];
    this.passEvents.set(key, events);
    try {
      await this.pass(key);
    } finally {
      this.passEvents.delete(key);
      for (const { pod, e } of events) this.event(pod, e);
    }
  }

  private async pass(key: string): Promise<void> {
    const i = key.indexOf('/');
    const namespace = key.slice(0, i);
    const name = key.slice(i + 1);
    const r = this.record(namespace, name);
    let resolution: EnvResolution | undefined;
    for (;;) {
      if (this.stopped) return;
      const pod = this.o.pods.get(namespace, name);
      const inc = pod?.metadata?.uid ? r.incarnations.get(pod.metadata.uid) : undefined;
      if (inc && pod) inc.pod = pod;
      // Seam "after the containers run": the connector-run probes follow the provider's status.
      let probes: Observed['probes'];
      const postStartStop = inc ? this.hooks.stopped(inc.uid) : undefined;
      if (inc?.providerStatus && pod) {
        this.prober.sync({ namespace, name, uid: inc.uid }, pod, inc.providerStatus);
        // Seam "after a container is first seen running": its postStart hook.
        this.hooks.observe(pod, inc.providerStatus);
        probes = this.prober.overrides(inc.uid);
      }
      const observed: Observed = {
        pod,
        now: this.now(),
        nodeIP: this.o.nodeIP,
        ...(resolution ? { resolution } : {}),
        ...(probes ? { probes } : {}),
        ...(postStartStop ? { postStartStop } : {}),
      };
      const outcome = reconcile(r, observed);
      if (outcome.kind === 'Resolve') {
        resolution = await this.resolve(key, outcome.pod);
        continue;
      }
      const before = this.queue.failuresOf(key);
      if (await this.effect(r, outcome)) continue;
      // Waiting outcomes counted a failure (or hold one): they keep the backoff; any other end is a success.
      if (outcome.kind !== 'Hold' && this.queue.failuresOf(key) <= before) this.queue.forget(key);
      return;
    }
  }

  /** Runs an outcome's effect; true when the pass goes on. */
  private async effect(r: PodRecord, out: Exclude<Outcome, { kind: 'Resolve' }>): Promise<boolean> {
    switch (out.kind) {
      case 'RemoveOld': {
        const inc = r.incarnations.get(out.uid);
        if (inc) await this.timed('delete', () => this.o.provider.deletePod(inc.pod, 0));
        this.untrack(r, out.uid);
        const gone = this.o.pods.get(r.namespace, r.name) === undefined;
        this.o.log.info(
          { pod: r.key, uid: out.uid },
          gone ? 'pod gone from the API; removed from the provider' : 'removed an older incarnation from the provider',
        );
        return true;
      }
      case 'Forget':
        this.o.refs.release(r.key);
        this.queue.forget(r.key);
        this.records.delete(r.key);
        return false;
      case 'Delete': {
        const uid = out.pod.metadata?.uid ?? '';
        if (out.inProvider) {
          const inc = r.incarnations.get(uid);
          // Seam "before delete": preStop hooks within the grace period; the rest of it goes to the provider.
          const left = inc?.created
            ? await this.hooks.beforeDelete(out.pod, inc.providerStatus, out.gracePeriodSeconds)
            : out.gracePeriodSeconds;
          await this.timed('delete', () => this.o.provider.deletePod(inc?.pod ?? out.pod, left));
          this.untrack(r, uid);
          this.event(out.pod, { type: 'Normal', reason: 'Killing', message: 'Stopped the pod in the backend' });
        }
        if (r.apiDeleteSent !== uid) {
          await this.o.writer.deletePod(r.namespace, r.name, uid);
          r.apiDeleteSent = uid;
        }
        return false;
      }
      case 'Release':
        this.o.refs.release(r.key);
        return false;
      case 'Reject':
        r.lostAtStart.delete(out.pod.metadata?.uid ?? '');
        await this.writeStatus(r, out.pod, out.status);
        this.event(out.pod, out.event);
        return false;
      case 'Wait': {
        r.waitingOn = new Set(out.missing.map((m) => refKey(m.kind, r.namespace, m.name)));
        await this.writeStatus(r, out.pod, out.status);
        for (const e of out.events) this.event(out.pod, e);
        this.queue.addRateLimited(r.key, MISSING_REF_MIN_MS);
        return false;
      }
      case 'Hold':
        // The rate-limited add of the failure is pending already; this only makes sure of it.
        this.queue.addAfter(r.key, out.ms);
        return false;
      case 'Create':
        return this.create(r, out.pod, out.env, out.notes);
      case 'Update':
        await this.update(r, out.pod, out.env);
        return true;
      case 'WriteStatus':
        await this.writeStatus(r, out.pod, out.status);
        return false;
      case 'Done':
        return false;
    }
  }

  private untrack(r: PodRecord, uid: string): void {
    const inc = r.incarnations.get(uid);
    r.incarnations.delete(uid);
    this.prober.forget(uid);
    this.hooks.forget(uid);
    this.o.tokens?.release(uid);
    clearTimeout(inc?.tokenTimer);
  }

  private async timed<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const start = performance.now();
    let result = 'ok';
    try {
      return await fn();
    } catch (err) {
      result =
        err instanceof PodRejectedError ? 'rejected' : err instanceof TransientProviderError ? 'transient' : 'error';
      throw err;
    } finally {
      this.o.metrics?.providerCallSeconds.observe({ op, result }, (performance.now() - start) / 1000);
    }
  }

  private event(pod: V1Pod, e: EventSpec): void {
    const pending = this.passEvents.get(keyOf(pod));
    if (pending) {
      pending.push({ pod, e });
      return;
    }
    const m = pod.metadata ?? {};
    this.o.events.record(
      { namespace: m.namespace ?? '', name: m.name ?? '', uid: m.uid ?? '' },
      e.type,
      e.reason,
      e.message,
    );
  }

  /**
   * What the provider gets with the pod: its env, its volumes' files (resolved by the core, after
   * the missing-reference wait, so every provider gets the same files; on the provider's first ask,
   * so a backend that writes no files mints no token) and its pull/azureFile Secrets.
   */
  private context(pod: V1Pod, env: PodContext['env']): PodContext {
    const ns = pod.metadata?.namespace ?? '';
    // Only what this pod references, as the resolver fetched it (a provider never sees other objects).
    const refs = podReferences(pod);
    const tokens = this.o.tokens;
    const provider = this.o.provider;
    const getSecret = async (name: string) => (refs.secrets.has(name) ? this.o.refs.getSecret(ns, name) : undefined);
    let files: ReturnType<PodContext['volumeFiles']> | undefined;
    const volumeFiles = () =>
      (files ??= resolveVolumeFiles(pod, {
        getSecret,
        getConfigMap: async (name) => (refs.configMaps.has(name) ? this.o.refs.getConfigMap(ns, name) : undefined),
        ...(tokens
          ? { getServiceAccountToken: (audience, expirationSeconds) => tokens.get(pod, audience, expirationSeconds) }
          : {}),
        resources: provider.containerResource
          ? (container, resource) => provider.containerResource?.(pod, container, resource)
          : kubeletResources(pod, this.allocatable),
      }));
    return {
      env,
      volumeFiles,
      getSecret,
      recordEvent: (type, reason, message) => this.event(pod, { type, reason, message }),
    };
  }

  /**
   * Fetches (and from now on watches) what the pod references, then resolves its env and
   * checks its volumes' mandatory references, all against the same objects.
   */
  private async resolve(key: string, pod: V1Pod): Promise<EnvResolution> {
    await this.o.refs.use(key, pod);
    const res = resolvePodEnv(pod, {
      getSecret: (n, name) => this.o.refs.getSecret(n, name),
      getConfigMap: (n, name) => this.o.refs.getConfigMap(n, name),
      nodeAllocatable: this.allocatable,
      hostIP: this.o.nodeIP,
    });
    res.missing.push(...missingVolumeRefs(pod, this.o.refs));
    return res;
  }

  /** Creates the pod in the provider; true when it was created (the pass goes on to its status). */
  private async create(r: PodRecord, pod: V1Pod, env: PodContext['env'], notes: EnvNote[]): Promise<boolean> {
    const uid = pod.metadata?.uid ?? '';
    for (const note of notes) this.event(pod, { type: 'Warning', reason: note.reason, message: note.message });
    r.optionalNoted = uid;
    r.waitingOn.clear();
    // Tracked before the call: if the pod is deleted meanwhile, the backend copy is removed too.
    let inc: Incarnation | undefined = r.incarnations.get(uid);
    if (!inc) {
      inc = { uid, pod, created: false, generation: pod.metadata?.generation };
      r.incarnations.set(uid, inc);
    }
    try {
      await this.timed('create', () => this.o.provider.createPod(pod, this.context(pod, env)));
    } catch (err) {
      if (err instanceof PodRejectedError) {
        this.untrack(r, uid);
        const msg = rejectionMessage(err);
        this.o.log.info({ pod: r.key, reason: err.reason, field: err.field }, 'provider rejected the pod');
        await this.writeStatus(r, pod, rejectedStatus(pod, err.reason, msg, this.o.nodeIP));
        this.event(pod, { type: 'Warning', reason: err.reason, message: msg });
        return false;
      }
      if (err instanceof ProviderDeferredError) {
        await this.deferCreate(r, pod, inc, err);
        return false;
      }
      const transient = err instanceof TransientProviderError;
      const reason = transient ? err.reason : 'ProviderError';
      // The queue counts the failures and holds the key for the backoff (at least Retry-After).
      const failedAt = this.now();
      const delay = this.queue.addRateLimited(r.key, transient ? (err.retryAfterMs ?? 0) : 0);
      // Taken before the queue's timer started, so the retry it brings finds the hold over.
      inc.retryAt = failedAt + delay;
      const n = this.queue.failuresOf(r.key);
      const msg = `creating the pod in the backend failed (attempt ${n}, retrying in ${Math.round(delay / 1000)} s): ${errMessage(err)}`;
      this.o.log.warn({ pod: r.key, reason, retryInMs: delay }, msg);
      const status = computePodStatus(pod, { hostIP: this.o.nodeIP, waiting: { reason, message: errMessage(err) } });
      await this.writeStatus(r, pod, status).catch(() => undefined);
      this.event(pod, { type: 'Warning', reason, message: msg });
      return false;
    }
    inc.created = true;
    inc.retryAt = undefined;
    inc.deferredReason = undefined;
    this.hooks.created(uid);
    this.queue.forget(r.key);
    this.event(pod, { type: 'Normal', reason: 'Created', message: 'Created the pod in the backend' });
    this.watchTokenLife(r, inc);
    return true;
  }

  /**
   * The provider paces the create: the key comes back at the expected time (decide() holds it
   * until then, so events meanwhile take no worker), no failure is counted, and the pod says why
   * it waits and until when: its containers' waiting reason and the Ready condition carry the
   * provider's reason, and one Event per reason tells it once.
   */
  private async deferCreate(r: PodRecord, pod: V1Pod, inc: Incarnation, err: ProviderDeferredError): Promise<void> {
    inc.retryAt = err.retryAt;
    this.queue.addAfter(r.key, Math.max(0, err.retryAt - this.now()));
    if (err.options.report === false) return;
    const at = new Date(Math.ceil(err.retryAt / 1000) * 1000).toISOString();
    const message = `${err.message}; expected at ${at}`;
    const status = computePodStatus(pod, { hostIP: this.o.nodeIP, waiting: { reason: err.reason, message } });
    await this.writeStatus(r, pod, status).catch(() => undefined);
    if (inc.deferredReason !== err.reason) {
      inc.deferredReason = err.reason;
      this.o.log.info({ pod: r.key, reason: err.reason, at }, 'the provider paces the create');
      this.event(pod, { type: 'Normal', reason: err.reason, message });
    }
  }

  /**
   * The provider baked the tokens it took into the pod it created. When the first of them
   * passes 80 % of its life (when a kubelet would have refreshed it) while the pod still runs,
   * the pod gets a Warning: the core holds a fresh token for any later create, but a provider
   * has no call to replace a running pod's files (ACI cannot change a running group's volumes
   * without restarting it). Tokens of the kube-api-access volume live a year (the API server's
   * extended expiration), so this speaks only of short-lived tokens a pod asked for explicitly.
   */
  private watchTokenLife(r: PodRecord, inc: Incarnation): void {
    const issued = this.o.tokens?.issued(inc.uid) ?? [];
    if (issued.length === 0) return;
    const first = issued.reduce((a, b) => (b.refreshAt < a.refreshAt ? b : a));
    const delay = Math.max(0, first.refreshAt - Date.now());
    if (delay > MAX_TIMER_MS) return; // outlives any timer (and, in practice, the pod)
    clearTimeout(inc.tokenTimer);
    inc.tokenTimer = setTimeout(() => {
      inc.tokenTimer = undefined;
      if (this.stopped || r.incarnations.get(inc.uid) !== inc || !inc.created) return;
      const aud = first.audience ? `audience ${first.audience}` : 'the API server audience';
      this.event(inc.pod, {
        type: 'Warning',
        reason: 'ServiceAccountTokenNotRefreshed',
        message:
          `the ServiceAccount token (${aud}) given to the pod passed 80 % of its life and expires at ${new Date(first.expiresAt).toISOString()}; ` +
          'the backend cannot replace the files of a running pod, so re-create the pod before then',
      });
    }, delay);
    inc.tokenTimer.unref();
  }

  /** Hands a spec change (e.g. a new image) to the provider; what it cannot apply it rejects. */
  private async update(r: PodRecord, pod: V1Pod, env: PodContext['env']): Promise<void> {
    const inc = r.incarnations.get(pod.metadata?.uid ?? '');
    try {
      await this.timed('update', () => this.o.provider.updatePod(pod, this.context(pod, env)));
    } catch (err) {
      if (!(err instanceof PodRejectedError)) throw err;
      this.o.log.info({ pod: r.key, reason: err.reason, field: err.field }, 'provider cannot apply the spec change');
      this.event(pod, { type: 'Warning', reason: err.reason, message: rejectionMessage(err) });
    }
    if (inc) inc.generation = pod.metadata?.generation;
  }

  private async writeStatus(r: PodRecord, pod: V1Pod, status: V1PodStatus): Promise<void> {
    if (!statusNeedsWrite(r, pod, status)) return;
    const uid = pod.metadata?.uid ?? '';
    const rv = pod.metadata?.resourceVersion;
    const view = ownedView(status);
    if (this.o.log.isLevelEnabled('trace')) {
      this.o.log.trace(
        { pod: r.key, rv, lastBasedOn: r.lastWrite?.basedOn, current: ownedView(pod.status), next: view },
        'writing pod status',
      );
    }
    const produced = await this.o.writer.patchStatus(pod, statusPatch(uid, status));
    if (produced === undefined) return; // the pod is gone
    this.statusWrites++;
    this.o.metrics?.statusWrites.inc();
    r.lastWrite = { uid, view, basedOn: rv, produced };
  }
}
