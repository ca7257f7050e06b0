/**
 * The ACI provider: pods as container groups.
 *
 * This file holds the pod operations; the status watcher (status-watcher.ts) keeps every
 * group's status fresh and pushes changes, health.ts answers for the node, and streams.ts
 * serves logs, exec and attach.
 */
import type { Readable } from 'node:stream';
import type { V1Pod } from '@kubernetes/client-node';
import type { ContainerGroup } from '@azure/arm-containerinstance';
import type { Registry } from 'prom-client';
import type { TokenCredential } from '@azure/identity';
import type { Logger } from 'pino';
import {
  PodRejectedError,
  ProviderDeferredError,
  TransientProviderError,
  type ExecResult,
  type ExecStreams,
  type HealthStatus,
  type LogOptions,
  type NodeInfoFromProvider,
  type PodContext,
  type PodRef,
  type Provider,
  type ProviderPod,
  type PodUsage,
  type ProviderEventListener,
  type StatusListener,
} from '../../core/provider.js';
import { AciArm } from './arm/arm-client.js';
import { ArmCaller, type ArmAttempt } from './arm/arm-caller.js';
import { TokenPacer, WindowPacer, type PaceWindow } from './arm/pacer.js';
import type { AciConfig } from './config.js';
import { createCredential, tlsOptionsFor } from './arm/credential.js';
import { ArmRequestError } from './errors.js';
import { AciNodeHealth } from './health.js';
import { containerGroupName, identityFromTags } from './naming.js';
import { aciContainerResource, podToContainerGroup, type MappingOptions } from './mapping/pod-to-group.js';
import { ImageConfigResolver, type ImageConfigSource } from './image-config.js';
import { mapPool } from '../../common/pool.js';
import { StatusWatcher } from './status-watcher.js';
import { containerUsage, GroupMetrics } from './metrics.js';
import { AciStreams } from './streams/streams.js';
import { imageReferenceProblem, InvalidImageReferenceError } from '../../common/image-reference.js';
import { sleep } from '../../common/backoff.js';
import { silentLogger } from '../../common/logger.js';

export interface AciProviderOptions {
  config: AciConfig;
  clusterId: string;
  nodeName: string;
  /** Overrides the credential built from the config (tests, embedding). */
  credential?: TokenCredential;
  /** Where the ARM request counter is registered. */
  metricsRegistry?: Registry;
  /** How often hot groups are looked at (ms). */
  passIntervalMs?: number;
  /** How often a steady Running group is refreshed at most (ms). */
  steadyRefreshMs?: number;
  /** How often a followed log is polled (ms). */
  logPollMs?: number;
  /** Concurrent `kubectl logs -f` clients served at once (all share one poll per container). Default 100. */
  maxLogFollowers?: number;
  onArmAttempt?: (a: ArmAttempt) => void;
  /** Where images' ENTRYPOINTs are read (default: their registries, with a cache). */
  imageConfigs?: ImageConfigSource;
  /** Retry tuning for ArmCaller (tests shorten it). */
  retry?: { maxAttempts?: number; baseDelayMs?: number; maxDelayMs?: number };
  /** Where background failures (status passes, log followers, health checks) are logged; silent by default. */
  log?: Logger;
}

const QUOTA_HOLD_MS = 30_000;
const DELETE_WAIT_MS = 120_000;

/**
 * An image a kubelet could not parse never reaches ACI. As a kubelet does, the pod stays
 * Pending with the container waiting in `InvalidImageName` (the core turns the transient
 * error's reason into that), an `InspectFailed` Event carries the kubelet's message, and it
 * is retried with back-off, so a corrected image (pod images are mutable) is picked up.
 */
function checkImageReferences(pod: V1Pod, ctx: PodContext): void {
  for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
    const problem = imageReferenceProblem(c.image ?? '');
    if (!problem) continue;
    const err = new InvalidImageReferenceError(c.image ?? '', problem);
    ctx.recordEvent('Warning', 'InspectFailed', err.message);
    throw new TransientProviderError('InvalidImageName', err.message, undefined, { cause: err });
  }
}

export class AciProvider implements Provider {
  readonly arm: AciArm;
  private readonly cfg: AciConfig;
  private readonly mapping: MappingOptions;
  private readonly watcher: StatusWatcher;
  private readonly tracked: StatusWatcher['tracked'];
  private readonly node: AciNodeHealth;
  private readonly streams: AciStreams;
  private readonly metrics: GroupMetrics;
  private quotaHoldUntil = 0;
  /** The window stamp of each operation in flight, to take it back if ACI refuses it. */
  private readonly lastStamp = new Map<string, number>();
  /** ACI's creation and deletion windows (this provider's subscription and region), and ARM's write and delete budgets. */
  private readonly creations: WindowPacer;
  private readonly deletions: WindowPacer;
  private readonly writeSlots: TokenPacer;
  private readonly deleteSlots: TokenPacer;

  constructor(private readonly o: AciProviderOptions) {
    this.cfg = o.config;
    const log = o.log ?? silentLogger();
    const tls = tlsOptionsFor(this.cfg);
    const caller = new ArmCaller({
      limits: this.cfg.limits,
      ...(o.metricsRegistry ? { registry: o.metricsRegistry } : {}),
      ...(o.onArmAttempt ? { onAttempt: o.onArmAttempt } : {}),
      ...o.retry,
    });
    this.creations = new WindowPacer({ windows: this.cfg.creationWindows });
    this.deletions = new WindowPacer({ windows: this.cfg.deletionWindows });
    this.writeSlots = new TokenPacer(caller.writes);
    this.deleteSlots = new TokenPacer(caller.deletes);
    this.arm = new AciArm({
      subscriptionId: this.cfg.subscriptionId,
      resourceGroup: this.cfg.resourceGroup,
      region: this.cfg.region,
      armEndpoint: this.cfg.armEndpoint,
      credential: o.credential ?? createCredential(this.cfg, tls),
      tls,
      caller,
    });
    this.mapping = {
      clusterId: o.clusterId,
      nodeName: o.nodeName,
      region: this.cfg.region,
      defaults: { cpu: this.cfg.defaultCpu, memoryInGB: this.cfg.defaultMemoryInGB },
      maximums: { cpu: this.cfg.maxCpuPerGroup, memoryInGB: this.cfg.maxMemoryInGBPerGroup },
      defaultSubnetIds: this.cfg.defaultSubnetIds,
      imageConfigs: o.imageConfigs ?? new ImageConfigResolver(),
    };
    this.watcher = new StatusWatcher({
      arm: this.arm,
      clusterId: o.clusterId,
      nodeName: o.nodeName,
      listIntervalMs: this.cfg.listIntervalMs,
      statusReadsPerSecond: this.cfg.statusReadsPerSecond,
      passIntervalMs: o.passIntervalMs ?? 2_000,
      steadyRefreshMs: o.steadyRefreshMs ?? 30_000,
      log: log.child({ part: 'status-watcher' }),
    });
    this.tracked = this.watcher.tracked;
    this.node = new AciNodeHealth(
      this.arm,
      this.cfg,
      () => [...this.tracked.values()].filter((t) => !t.vanished).length,
      log.child({ part: 'health' }),
    );
    this.streams = new AciStreams({
      arm: this.arm,
      cfg: this.cfg,
      nameOf: (ref) => this.nameOf(ref),
      lookup: (name) => this.tracked.get(name),
      logPollMs: o.logPollMs ?? 2_000,
      maxLogFollowers: o.maxLogFollowers ?? 100,
      log: log.child({ part: 'logs' }),
    });
    this.metrics = new GroupMetrics({
      arm: this.arm,
      armEndpoint: this.cfg.armEndpoint,
      subscriptionId: this.cfg.subscriptionId,
      resourceGroup: this.cfg.resourceGroup,
      ...(this.cfg.metricsRefreshMs !== undefined ? { refreshMs: this.cfg.metricsRefreshMs } : {}),
    });
  }

  // ---- node ----------------------------------------------------------------

  nodeInfo(): Promise<NodeInfoFromProvider> {
    return this.node.nodeInfo();
  }

  health(): Promise<HealthStatus> {
    return this.node.health();
  }

  // ---- pods ----------------------------------------------------------------

  private nameOf(ref: PodRef): string {
    return containerGroupName({
      clusterId: this.o.clusterId,
      namespace: ref.namespace,
      podName: ref.name,
      podUid: ref.uid,
    });
  }

  containerResource(pod: V1Pod, container: string, resource: string): number | undefined {
    return aciContainerResource(pod, this.mapping, container, resource);
  }

  async createPod(pod: V1Pod, ctx: PodContext): Promise<void> {
    this.watcher.start();
    const ref = refOf(pod);
    checkImageReferences(pod, ctx);
    const { name, group, noIpReason, notes } = await podToContainerGroup(pod, ctx, this.mapping);
    const known = this.tracked.get(name);
    if (known) {
      if (known.vanished) {
        throw new PodRejectedError(
          'ProviderGroupVanished',
          `container group ${name} was deleted outside Kubernetes; not re-creating it`,
        );
      }
      known.spec = pod.spec;
      return;
    }
    // The core turns QuotaExceeded into the pod's waiting reason and a Warning event.
    if (Date.now() < this.quotaHoldUntil) {
      throw new TransientProviderError(
        'QuotaExceeded',
        'Azure Container Instances quota is exhausted; waiting for capacity',
        this.quotaHoldUntil - Date.now(),
      );
    }
    this.pace(name, this.creations, this.writeSlots, 'creation');
    let created: ContainerGroup;
    try {
      // A 429 comes back at once: the pod is deferred rather than a worker held on Retry-After.
      created = await this.arm.createGroup(name, group, { maxThrottledAttempts: 1 });
    } catch (e) {
      this.paceFailed(name, this.creations, e, 'creation');
      if (e instanceof TransientProviderError && e.reason === 'QuotaExceeded')
        this.quotaHoldUntil = Date.now() + QUOTA_HOLD_MS;
      if (e instanceof ArmRequestError && e.statusCode === 400) {
        throw new PodRejectedError(
          'ProviderRejected',
          `Azure Container Instances rejected the container group: ${e.message}`,
        );
      }
      throw e;
    }
    this.confirmPaced(name, this.creations, 'creation');
    const t = this.watcher.track(name, ref, false);
    t.spec = pod.spec;
    t.provisioningState = created.provisioningState;
    t.hot = true;
    // A kubelet gives every pod an IP; where ACI cannot, say so where the user looks.
    if (noIpReason) ctx.recordEvent('Warning', 'NoPodIP', noIpReason);
    for (const n of notes ?? []) ctx.recordEvent(n.type, n.reason, n.message);
    this.watcher.kick();
  }

  async updatePod(pod: V1Pod, _ctx: PodContext): Promise<void> {
    // ACI cannot change a running group in place; only our bookkeeping follows the pod.
    const t = this.tracked.get(this.nameOf(refOf(pod)));
    if (t) t.spec = pod.spec;
  }

  async deletePod(pod: V1Pod, _gracePeriodSeconds: number): Promise<void> {
    const name = this.nameOf(refOf(pod));
    const t = this.tracked.get(name);
    // A create still waiting for its slot gives it up.
    this.creations.release(name);
    this.writeSlots.release(name);
    // Only a group we know of counts in ACI's deletion windows: the DELETE of a group that was never
    // created (a pod deleted while its create waited) finds nothing and costs no slot.
    if (t && !t.deleting) this.pace(name, this.deletions, this.deleteSlots, 'deletion');
    if (t) t.deleting = true;
    let outcome: 'deleted' | 'accepted';
    try {
      outcome = await this.arm.deleteGroup(name, { maxThrottledAttempts: 1 });
    } catch (e) {
      if (t) t.deleting = false;
      this.paceFailed(name, this.deletions, e, 'deletion');
      throw e;
    }
    this.confirmPaced(name, this.deletions, 'deletion');
    if (outcome === 'accepted') {
      // ARM is still tearing it down: the contract is "nothing remains", so wait for the 404.
      const deadline = Date.now() + DELETE_WAIT_MS;
      while (await this.arm.getGroup(name)) {
        if (Date.now() > deadline)
          throw new TransientProviderError(
            'DeletionInProgress',
            `container group ${name} is still being deleted`,
            5_000,
          );
        await sleep(2_000);
      }
    }
    this.tracked.delete(name);
    // Capacity was freed: let a create held back by quota try again.
    this.quotaHoldUntil = 0;
  }

  /**
   * Throws a deferral when the operation for group `name` does not fit ACI's windows or ARM's
   * budget now: the caller comes back at its slot instead of waiting inside the call.
   */
  private pace(name: string, windows: WindowPacer, budget: TokenPacer, kind: 'creation' | 'deletion'): void {
    const d = windows.acquire(name);
    const scope = `subscription ${this.cfg.subscriptionId}, region ${this.cfg.region}`;
    if (!d.go) {
      const why = d.window
        ? `Azure Container Instances allows ${d.window.count} container group ${kind}s per ${describeWindow(d.window)} (${scope}), and that window is full`
        : `Azure Container Instances throttled container group ${kind}s (${scope})`;
      throw new ProviderDeferredError(kind === 'creation' ? 'CreationPaced' : 'DeletionPaced', why, d.at);
    }
    const slot = budget.acquire(name);
    if (slot !== undefined) {
      // Not counted in the window after all: the call goes at its budget slot, keeping its place in line.
      windows.postpone(name, d.stamp, slot);
      // A matter of seconds at ARM's refill: the pod keeps its ContainerCreating rather than a status write and an Event.
      throw new ProviderDeferredError(
        kind === 'creation' ? 'CreationPaced' : 'DeletionPaced',
        `ARM's ${kind === 'creation' ? 'write' : 'delete'} request budget is spent (${scope}); the ${kind} waits its turn`,
        slot,
        { report: false },
      );
    }
    this.lastStamp.set(`${kind}\u0000${name}`, d.stamp);
  }

  /** The operation was answered: it counts in the windows from its answer, the latest moment ACI can have counted it. */
  private confirmPaced(name: string, windows: WindowPacer, kind: 'creation' | 'deletion'): void {
    const stamp = this.lastStamp.get(`${kind}\u0000${name}`);
    this.lastStamp.delete(`${kind}\u0000${name}`);
    if (stamp !== undefined) windows.confirm(stamp);
  }

  /** A 429 from ACI: every later slot waits out its Retry-After, and this one comes back after it. */
  private paceFailed(name: string, windows: WindowPacer, e: unknown, kind: 'creation' | 'deletion'): void {
    const stamp = this.lastStamp.get(`${kind}\u0000${name}`);
    this.lastStamp.delete(`${kind}\u0000${name}`);
    if (!(e instanceof TransientProviderError) || e.reason !== 'Throttled') {
      // Only an answer we never got (5xx, network) may hide an operation ACI did: it stays counted.
      const unknown = e instanceof TransientProviderError && e.reason === 'ArmUnavailable';
      if (!unknown && stamp !== undefined) windows.cancel(stamp);
      return;
    }
    if (stamp !== undefined) windows.cancel(stamp);
    windows.throttled(e.retryAfterMs ?? 1_000);
    const d = windows.acquire(name);
    const at = d.go ? Date.now() + (e.retryAfterMs ?? 1_000) : d.at;
    if (d.go) windows.cancel(d.stamp);
    throw new ProviderDeferredError(
      kind === 'creation' ? 'CreationPaced' : 'DeletionPaced',
      `Azure Container Instances throttled container group ${kind}s (subscription ${this.cfg.subscriptionId}, region ${this.cfg.region}): ${e.message}`,
      at,
    );
  }

  async getPod(ref: PodRef): Promise<ProviderPod | undefined> {
    const name = this.nameOf(ref);
    const t = this.tracked.get(name);
    if (t?.status) return { ref: t.ref, status: t.status };
    const g = await this.arm.getGroup(name);
    if (!g || !this.watcher.isOurs(g)) return undefined;
    const tr = t ?? this.watcher.track(name, ref);
    this.watcher.absorb(tr, g, Date.now());
    return tr.status ? { ref: tr.ref, status: tr.status } : undefined;
  }

  /** The group's IP: private in a VNet (what the node reaches), public otherwise. */
  async portForwardAddress(ref: PodRef): Promise<string | undefined> {
    const p = await this.getPod(ref);
    return p?.status.podIP ?? p?.status.podIPs?.[0]?.ip;
  }

  /**
   * ACI has no call that restarts one container: its means is the group's `restart` action,
   * which restarts every container of the group in place (decisions.md). Resolves to the
   * containers that restarted with it.
   */
  async restartContainer(ref: PodRef, _container: string): Promise<string[]> {
    const name = this.nameOf(ref);
    await this.arm.restartGroup(name);
    const t = this.tracked.get(name);
    if (t) t.hot = true;
    this.watcher.kick();
    const spec = t?.spec;
    return [
      ...(spec?.containers ?? []),
      ...(spec?.initContainers ?? []).filter((c) => c.restartPolicy === 'Always'),
    ].map((c) => c.name);
  }

  /**
   * ACI's stop action (POST …/stop): every container of the group ends and the group stays,
   * stopped, until it is deleted. The only way ACI offers to end a container for good.
   */
  async stopPod(ref: PodRef): Promise<void> {
    const name = this.nameOf(ref);
    await this.arm.stopGroup(name);
    const t = this.tracked.get(name);
    if (t) t.hot = true;
    this.watcher.kick();
  }

  async listPods(): Promise<ProviderPod[]> {
    this.watcher.start();
    const groups = (await this.arm.listGroups()).filter((g) => this.watcher.isOurs(g));
    const results = await mapPool(groups, 16, async (listed) => {
      const name = listed.name ?? '';
      const id = identityFromTags(listed.tags)!;
      const ref = { namespace: id.namespace, name: id.podName, uid: id.podUid };
      const t = this.tracked.get(name) ?? this.watcher.track(name, ref);
      if (!t.status) {
        const g = await this.arm.getGroup(name);
        if (g) this.watcher.absorb(t, g, Date.now());
      }
      return t.status ? { ref, status: t.status } : undefined;
    });
    const out: ProviderPod[] = [];
    for (const r of results) {
      if (r.status === 'rejected') throw r.reason;
      if (r.value) out.push(r.value);
    }
    return out;
  }

  // ---- usage (kubectl top, HPA) ---------------------------------------------

  /** Azure Monitor's figures (metrics.ts) for the groups that run; a group whose read fails is left out this time. */
  async getPodStats(): Promise<PodUsage[]> {
    const running = [...this.tracked.values()].filter(
      (t) => !t.vanished && !t.deleting && t.status?.phase === 'Running',
    );
    this.metrics.retain(new Set(running.map((t) => t.name)));
    const results = await mapPool(running, 8, async (t) => {
      const figures = await this.metrics.figures(t.name);
      const starts = new Map<string, string>();
      for (const c of [...(t.status?.initContainerStatuses ?? []), ...(t.status?.containerStatuses ?? [])]) {
        const at = c.state?.running?.startedAt;
        if (at) starts.set(c.name, new Date(at).toISOString());
      }
      return { ref: t.ref, containers: containerUsage(figures, starts, Date.now()) };
    });
    const out: PodUsage[] = [];
    let failure: Error | undefined;
    for (const r of results) {
      if (r.status === 'fulfilled') out.push(r.value);
      else
        failure ??=
          r.reason instanceof Error
            ? r.reason
            : new Error(`reading Azure Monitor metrics failed: ${JSON.stringify(r.reason)}`);
    }
    // Only when nothing could be read is it an error (scrape_error 1); partial figures are still figures.
    if (out.length === 0 && failure !== undefined) throw failure;
    return out;
  }

  onStatus(listener: StatusListener): void {
    this.watcher.onStatus(listener);
  }

  onEvent(listener: ProviderEventListener): void {
    this.watcher.onEvent(listener);
  }

  /** Status passes completed so far (tests wait on this rather than on time). */
  get statusPasses(): number {
    return this.watcher.passes;
  }

  /** Resolves once a status pass that starts after this call has completed. */
  afterNextStatusPass(): Promise<void> {
    return this.watcher.afterNextPass();
  }

  // ---- logs / exec ---------------------------------------------------------

  getContainerLogs(ref: PodRef, container: string, opts: LogOptions): Promise<Readable> {
    return this.streams.getContainerLogs(ref, container, opts);
  }

  exec(ref: PodRef, container: string, command: string[], streams: ExecStreams): Promise<ExecResult> {
    return this.streams.exec(ref, container, command, streams);
  }

  attach(ref: PodRef, container: string, streams: ExecStreams): Promise<ExecResult> {
    return this.streams.attach(ref, container, streams);
  }

  async close(): Promise<void> {
    this.watcher.close();
  }
}

function describeWindow(w: PaceWindow): string {
  const s = w.windowMs / 1000;
  return s % 3600 === 0 ? `${s / 3600} h` : s % 60 === 0 ? `${s / 60} min` : `${s} s`;
}

function refOf(pod: V1Pod): PodRef {
  const md = pod.metadata ?? {};
  if (!md.namespace || !md.name || !md.uid)
    throw new PodRejectedError('InvalidPod', 'pod needs metadata.namespace, name and uid', 'metadata');
  return { namespace: md.namespace, name: md.name, uid: md.uid };
}
