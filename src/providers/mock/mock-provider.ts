/**
 * An in-process provider for tests and benchmarks. It "runs" pods by keeping a
 * record and reporting statuses; nothing executes.
 *
 * Behaviour is chosen per pod with annotations (all optional):
 * - `mock.aci-connector.io/start-delay-ms`: ms before the pod is Running
 *   (default: the provider's startDelayMs, 0 = Running at once).
 * - `mock.aci-connector.io/exit-code`: every container exits with this code;
 *   `mock.aci-connector.io/exit-code.<container>` sets one container.
 * - `mock.aci-connector.io/run-ms`: how long an exiting container runs (default 500).
 * - `mock.aci-connector.io/transient-failures`: the first N createPod calls for
 *   this pod fail with a TransientProviderError (retryAfterMs 200).
 * - `mock.aci-connector.io/create-latency-ms`: createPod takes this long before
 *   the backend holds the pod (to test deletes during creation).
 * - `mock.aci-connector.io/cpu-millicores` and `…/memory-bytes` (`.<container>` for
 *   one container): the usage getPodStats reports for each running container
 *   (default 5 millicores, 8 MiB), for /stats/summary, kubectl top and HPA tests.
 * - `mock.aci-connector.io/record-volumes: "true"`: the core's volume files for the pod
 *   are fetched (tokens minted, bad paths rejected) and kept in the state file.
 * Restart policies are honoured: an exited container restarts (restartCount + 1)
 * under Always, or OnFailure with a non-zero code; otherwise the pod ends
 * Succeeded (all exited 0) or Failed.
 * Like ACI, it rejects privileged containers and hostNetwork with PodRejectedError
 * naming the field.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Readable } from 'node:stream';
import type { V1ContainerStatus, V1Pod } from '@kubernetes/client-node';
import {
  PodRejectedError,
  TransientProviderError,
  type HealthStatus,
  type NodeInfoFromProvider,
  type PodContext,
  type PodRef,
  type Provider,
  type ProviderPod,
  type ProviderEvent,
  type ProviderEventListener,
  type ProviderPodStatus,
  type StatusListener,
  type ExecResult,
  type ExecStreams,
  type LogOptions,
  type PodUsage,
} from '../../core/provider.js';
import { StateStore, type CallCounts, type MockContainer, type MockPod } from './state-store.js';
import { mockAttach, mockExec, mockLogs, type PodSnapshot } from './streams.js';

export const MOCK_ANNOTATION = 'mock.aci-connector.io';

const DEFAULT_CPU_MILLICORES = 5;
const DEFAULT_MEMORY_BYTES = 8 * 1024 * 1024;

export interface MockProviderOptions {
  nodeName: string;
  clusterId: string;
  /** Default ms before a pod is Running. */
  startDelayMs?: number;
  /** JSON file holding the backend's state across process restarts. */
  stateFile?: string;
  /** While this file exists, health() fails with its content as the message. */
  healthFile?: string;
  region?: string;
}

function annotation(pod: V1Pod, name: string): string | undefined {
  return pod.metadata?.annotations?.[`${MOCK_ANNOTATION}/${name}`];
}

function intAnnotation(pod: V1Pod, name: string): number | undefined {
  const v = annotation(pod, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) {
    throw new PodRejectedError(
      'InvalidAnnotation',
      `annotation ${MOCK_ANNOTATION}/${name} must be an integer, got ${JSON.stringify(v)}`,
      `metadata.annotations['${MOCK_ANNOTATION}/${name}']`,
    );
  }
  return n;
}

function refOf(pod: V1Pod): PodRef {
  return {
    namespace: pod.metadata?.namespace ?? 'default',
    name: pod.metadata?.name ?? '',
    uid: pod.metadata?.uid ?? '',
  };
}

export class MockProvider implements Provider {
  private readonly store: StateStore;
  private readonly listeners: StatusListener[] = [];
  private readonly eventListeners: ProviderEventListener[] = [];
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly transientLeft = new Map<string, number>();
  private forcedHealth: HealthStatus | undefined;
  private closed = false;

  constructor(private readonly opts: MockProviderOptions) {
    this.store = new StateStore(opts.stateFile);
    // Resume the lifecycle of pods that were running before a restart.
    for (const p of this.ownPods()) this.schedule(p);
  }

  /** Counts of calls per pod uid, for tests asserting no duplicates. */
  calls(uid: string): CallCounts | undefined {
    return this.store.state.calls[uid];
  }

  /** Flips health for tests in the same process. undefined restores the default. */
  setHealth(h: HealthStatus | undefined): void {
    this.forcedHealth = h;
  }

  async nodeInfo(): Promise<NodeInfoFromProvider> {
    const region = this.opts.region ?? 'mock-region-1';
    return {
      capacity: { cpu: '1000', memory: '4Ti', pods: '5000', 'ephemeral-storage': '10Ti' },
      labels: { 'topology.kubernetes.io/region': region, 'topology.kubernetes.io/zone': `${region}-a` },
      operatingSystem: 'linux',
      architecture: 'amd64',
    };
  }

  async health(): Promise<HealthStatus> {
    if (this.forcedHealth) return this.forcedHealth;
    const f = this.opts.healthFile;
    if (f && existsSync(f)) {
      const msg = readFileSync(f, 'utf8').trim() || 'the mock backend was told to be unhealthy';
      return { ok: false, reason: 'MockBackendUnhealthy', message: msg };
    }
    return { ok: true, reason: 'ProviderReady', message: 'the mock backend accepts pods' };
  }

  async createPod(pod: V1Pod, ctx: PodContext): Promise<void> {
    const ref = refOf(pod);
    const counts = this.store.counts(ref.uid);
    counts.createCalls++;
    if (this.store.state.pods[ref.uid]) return this.store.save();
    this.validate(pod);
    // The mock writes no files, so it asks the core for them (minting tokens, failing a bad path)
    // only when a test wants them recorded: a burst of pods costs no TokenRequests.
    const volumes = annotation(pod, 'record-volumes') === 'true' ? recordedVolumes(await ctx.volumeFiles()) : undefined;
    const latency = intAnnotation(pod, 'create-latency-ms') ?? 0;
    if (latency > 0) {
      // Make the call visible in the state file while it is still in progress.
      void this.store.save().catch(() => undefined);
      await new Promise((r) => setTimeout(r, latency));
      if (this.store.state.pods[ref.uid]) return this.store.save();
    }
    const transient = intAnnotation(pod, 'transient-failures') ?? 0;
    const left = this.transientLeft.get(ref.uid) ?? transient;
    if (left > 0) {
      this.transientLeft.set(ref.uid, left - 1);
      throw new TransientProviderError(
        'MockThrottled',
        `the mock backend is throttling (${left} more failure(s) configured)`,
        200,
      );
    }
    const runMs = intAnnotation(pod, 'run-ms') ?? 500;
    const podExit = intAnnotation(pod, 'exit-code');
    const containers: MockContainer[] = (pod.spec?.containers ?? []).map((c) => {
      const own = intAnnotation(pod, `exit-code.${c.name}`);
      const exitCode = own ?? podExit;
      const usage = {
        cpuMillicores:
          intAnnotation(pod, `cpu-millicores.${c.name}`) ??
          intAnnotation(pod, 'cpu-millicores') ??
          DEFAULT_CPU_MILLICORES,
        memoryBytes:
          intAnnotation(pod, `memory-bytes.${c.name}`) ?? intAnnotation(pod, 'memory-bytes') ?? DEFAULT_MEMORY_BYTES,
      };
      return exitCode === undefined
        ? { name: c.name, image: c.image ?? '', runMs, ...usage }
        : { name: c.name, image: c.image ?? '', runMs, exitCode, ...usage };
    });
    const delay = intAnnotation(pod, 'start-delay-ms') ?? this.opts.startDelayMs ?? 0;
    const n = this.store.state.nextIP++;
    const mp: MockPod = {
      ref,
      owner: { node: this.opts.nodeName, cluster: this.opts.clusterId },
      restartPolicy: (pod.spec?.restartPolicy as MockPod['restartPolicy'] | undefined) ?? 'Always',
      containers,
      startAt: Date.now() + delay,
      podIP: `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`,
      status: { phase: 'Pending' },
      runStartedAt: {},
      env: Object.fromEntries(
        [...ctx.env].map(([container, vars]) => [
          container,
          vars.map((v) =>
            v.sensitive
              ? { name: v.name, sha256: createHash('sha256').update(v.value).digest('hex') }
              : { name: v.name, value: v.value },
          ),
        ]),
      ),
      ...(volumes ? { volumes } : {}),
    };
    mp.status = this.pendingStatus(mp);
    this.store.state.pods[ref.uid] = mp;
    this.store.changed(ref.uid);
    counts.created++;
    this.schedule(mp);
    await this.store.save();
    // A delayed pod reports ContainerCreating first (an immediate one already reported Running).
    if (mp.status.phase === 'Pending') this.emit(mp);
  }

  async updatePod(_pod: V1Pod, _ctx: PodContext): Promise<void> {
    // Nothing can change in place, as with ACI.
  }

  async deletePod(pod: V1Pod, _gracePeriodSeconds: number): Promise<void> {
    const ref = refOf(pod);
    const counts = this.store.counts(ref.uid);
    counts.deleteCalls++;
    const mp = this.store.state.pods[ref.uid];
    if (mp) {
      delete this.store.state.pods[ref.uid];
      this.store.changed(ref.uid);
      counts.deleted++;
      this.clearTimer(ref.uid);
    }
    await this.store.save();
  }

  async getPod(ref: PodRef): Promise<ProviderPod | undefined> {
    const mp = this.store.state.pods[ref.uid];
    if (!mp || !this.isOwn(mp)) return undefined;
    return { ref: mp.ref, status: mp.status };
  }

  async listPods(): Promise<ProviderPod[]> {
    return this.ownPods().map((mp) => ({ ref: mp.ref, status: mp.status }));
  }

  /** The annotated figures for every running container; CPU time is the rate since the run started. */
  async getPodStats(): Promise<PodUsage[]> {
    const now = Date.now();
    const time = new Date(now).toISOString();
    return this.ownPods().map((mp) => ({
      ref: mp.ref,
      containers: mp.containers.flatMap((c) => {
        const started = mp.runStartedAt[c.name];
        const running = mp.status.containerStatuses?.find((s) => s.name === c.name)?.state?.running;
        if (started === undefined || !running) return [];
        const millicores = c.cpuMillicores ?? DEFAULT_CPU_MILLICORES;
        const memory = c.memoryBytes ?? DEFAULT_MEMORY_BYTES;
        return [
          {
            name: c.name,
            time,
            startTime: new Date(started).toISOString(),
            usageNanoCores: millicores * 1e6,
            usageCoreNanoSeconds: Math.round(millicores * 1e6 * (Math.max(0, now - started) / 1000)),
            workingSetBytes: memory,
            usageBytes: memory,
          },
        ];
      }),
    }));
  }

  onStatus(listener: StatusListener): void {
    this.listeners.push(listener);
  }

  onEvent(listener: ProviderEventListener): void {
    this.eventListeners.push(listener);
  }

  /**
   * Reports a backend event on a pod it holds, as a real backend's watch would (tests in the
   * same process; the mock raises none by itself). Returns false for a pod it does not hold.
   */
  raiseEvent(ref: PodRef, event: ProviderEvent): boolean {
    const mp = this.store.state.pods[ref.uid];
    if (!mp || !this.isOwn(mp) || this.closed) return false;
    const r = { ...mp.ref };
    setImmediate(() => {
      for (const l of this.eventListeners) l(r, event);
    });
    return true;
  }

  // Streaming hooks for the kubelet API; what they print is documented in streams.ts.
  async getContainerLogs(ref: PodRef, container: string, opts: LogOptions): Promise<Readable> {
    return mockLogs(this.snapshot(ref), container, opts);
  }

  async exec(ref: PodRef, container: string, command: string[], streams: ExecStreams): Promise<ExecResult> {
    return mockExec(this.snapshot(ref), container, command, streams);
  }

  async attach(ref: PodRef, container: string, streams: ExecStreams): Promise<ExecResult> {
    return mockAttach(this.snapshot(ref), container, streams);
  }

  private snapshot(ref: PodRef): PodSnapshot {
    return () => {
      const mp = this.store.state.pods[ref.uid];
      return mp && this.isOwn(mp) ? mp : undefined;
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const uid of [...this.timers.keys()]) this.clearTimer(uid);
    await this.store.save();
  }

  // ---- internals -----------------------------------------------------------

  private isOwn(mp: MockPod): boolean {
    return mp.owner.node === this.opts.nodeName && mp.owner.cluster === this.opts.clusterId;
  }

  private ownPods(): MockPod[] {
    return Object.values(this.store.state.pods).filter((p) => this.isOwn(p));
  }

  private validate(pod: V1Pod): void {
    if (pod.spec?.hostNetwork) {
      throw new PodRejectedError(
        'UnsupportedField',
        'hostNetwork is not supported by the mock backend (nor by ACI)',
        'spec.hostNetwork',
      );
    }
    const groups = [
      ['spec.initContainers', pod.spec?.initContainers ?? []],
      ['spec.containers', pod.spec?.containers ?? []],
    ] as const;
    for (const [path, list] of groups) {
      list.forEach((c, i) => {
        if (c.securityContext?.privileged) {
          const field = `${path}[${i}].securityContext.privileged`;
          throw new PodRejectedError(
            'UnsupportedField',
            `${field}: privileged containers are not supported by the mock backend (nor by ACI)`,
            field,
          );
        }
      });
    }
  }

  private emit(mp: MockPod): void {
    if (this.closed) return;
    const ref = { ...mp.ref };
    const status = structuredClone(mp.status);
    setImmediate(() => {
      for (const l of this.listeners) l(ref, status);
    });
  }

  private clearTimer(uid: string): void {
    const t = this.timers.get(uid);
    if (t) clearTimeout(t);
    this.timers.delete(uid);
  }

  private setTimer(mp: MockPod, at: number): void {
    this.clearTimer(mp.ref.uid);
    const t = setTimeout(
      () => {
        this.timers.delete(mp.ref.uid);
        if (this.store.state.pods[mp.ref.uid] !== mp) return;
        this.advance(mp);
      },
      Math.max(0, at - Date.now()),
    );
    this.timers.set(mp.ref.uid, t);
  }

  /** Plans the next transition of a pod from its stored timestamps. */
  private schedule(mp: MockPod): void {
    if (this.closed) return;
    if (mp.status.phase === 'Succeeded' || mp.status.phase === 'Failed') return;
    if (mp.status.phase === 'Pending') {
      if (mp.startAt <= Date.now()) this.advance(mp);
      else this.setTimer(mp, mp.startAt);
      return;
    }
    const next = this.nextExit(mp);
    if (next !== undefined) this.setTimer(mp, next);
  }

  private nextExit(mp: MockPod): number | undefined {
    let next: number | undefined;
    for (const c of mp.containers) {
      const started = mp.runStartedAt[c.name];
      if (c.exitCode === undefined || started === undefined) continue;
      const cs = mp.status.containerStatuses?.find((s) => s.name === c.name);
      if (!cs?.state?.running) continue;
      const at = started + c.runMs;
      if (next === undefined || at < next) next = at;
    }
    return next;
  }

  /** Moves a pod forward: start it, or exit/restart the containers whose time is up. */
  private advance(mp: MockPod): void {
    const now = Date.now();
    if (mp.status.phase === 'Pending') {
      for (const c of mp.containers) mp.runStartedAt[c.name] = now;
      mp.status = this.runningStatus(mp, new Date(now));
    } else {
      const nowDate = new Date(now);
      const statuses = mp.status.containerStatuses ?? [];
      for (const c of mp.containers) {
        const cs = statuses.find((s) => s.name === c.name);
        const started = mp.runStartedAt[c.name];
        if (!cs?.state?.running || c.exitCode === undefined || started === undefined || started + c.runMs > now)
          continue;
        const terminated = {
          exitCode: c.exitCode,
          reason: c.exitCode === 0 ? 'Completed' : 'Error',
          startedAt: cs.state.running.startedAt,
          finishedAt: nowDate,
          containerID: cs.containerID,
        };
        const restart = mp.restartPolicy === 'Always' || (mp.restartPolicy === 'OnFailure' && c.exitCode !== 0);
        if (restart) {
          cs.restartCount += 1;
          cs.lastState = { terminated };
          cs.containerID = `mock://${mp.ref.uid}/${c.name}/${cs.restartCount}`;
          cs.state = { running: { startedAt: nowDate } };
          mp.runStartedAt[c.name] = now;
        } else {
          cs.state = { terminated };
          cs.ready = false;
          cs.started = false;
        }
      }
      const all = statuses.length > 0 && statuses.every((s) => s.state?.terminated);
      if (all) {
        const failed = statuses.some((s) => (s.state?.terminated?.exitCode ?? 0) !== 0);
        mp.status = { ...mp.status, phase: failed ? 'Failed' : 'Succeeded', containerStatuses: statuses };
      } else {
        mp.status = { ...mp.status, containerStatuses: statuses };
      }
    }
    this.store.changed(mp.ref.uid);
    void this.store.save().catch(() => undefined);
    this.emit(mp);
    this.schedule(mp);
  }

  private pendingStatus(mp: MockPod): ProviderPodStatus {
    return {
      phase: 'Pending',
      containerStatuses: mp.containers.map((c): V1ContainerStatus => ({
        name: c.name,
        image: c.image,
        imageID: '',
        ready: false,
        started: false,
        restartCount: 0,
        state: { waiting: { reason: 'ContainerCreating' } },
      })),
    };
  }

  private runningStatus(mp: MockPod, now: Date): ProviderPodStatus {
    return {
      phase: 'Running',
      podIP: mp.podIP,
      podIPs: [{ ip: mp.podIP }],
      startTime: now,
      containerStatuses: mp.containers.map((c): V1ContainerStatus => ({
        name: c.name,
        image: c.image,
        imageID: `mock-image://${c.image}`,
        containerID: `mock://${mp.ref.uid}/${c.name}/0`,
        ready: true,
        started: true,
        restartCount: 0,
        state: { running: { startedAt: now } },
      })),
    };
  }
}

/** The volume files as the state file keeps them: sensitive contents only as a sha256. */
function recordedVolumes(volumes: Awaited<ReturnType<PodContext['volumeFiles']>>): NonNullable<MockPod['volumes']> {
  const out: NonNullable<MockPod['volumes']> = {};
  for (const [name, files] of volumes) {
    const rec: NonNullable<MockPod['volumes']>[string] = {};
    for (const [path, f] of files) {
      const bytes = Buffer.from(f.content, 'base64');
      rec[path] = f.sensitive
        ? { mode: f.mode, sha256: createHash('sha256').update(bytes).digest('hex') }
        : { mode: f.mode, value: bytes.toString('utf8') };
    }
    out[name] = rec;
  }
  return out;
}
