/**
 * The ACI provider: pods as container groups.
 *
 * Status without polling every pod: a pass every `passIntervalMs` GETs only the
 * groups whose state can change soon ("hot": provisioning, pending, not ready),
 * and refreshes steady ones in the remaining status budget, oldest first. Every
 * `listIntervalMs` one paged list of the resource group notices provisioning
 * changes, groups adopted after a restart, and groups deleted behind our back.
 */
import type { Readable } from 'node:stream';
import type { V1Pod } from '@kubernetes/client-node';
import type { ContainerGroup } from '@azure/arm-containerinstance';
import type { Registry } from 'prom-client';
import type { TokenCredential } from '@azure/identity';
import {
  PodRejectedError,
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
  type ProviderPodStatus,
  type StatusListener,
} from '../../core/provider.js';
import { AciArm } from './arm-client.js';
import { ArmCaller, type ArmAttempt } from './arm-caller.js';
import type { AciConfig } from './config.js';
import { createCredential, tlsOptionsFor } from './credential.js';
import { ArmRequestError } from './errors.js';
import { EventDeduper } from './events.js';
import { containerGroupName, identityFromTags } from './naming.js';
import { podToContainerGroup, type MappingOptions } from './pod-to-group.js';
import { mapPool } from './pool.js';
import { groupToPodStatus } from './status.js';
import { TokenBucket } from './token-bucket.js';
import { attachViaWebSocket, execViaWebSocket, ExecShellUnavailableError } from './exec.js';
import { planExec } from './exec-command.js';
import { imageReferenceProblem, InvalidImageReferenceError } from '../../common/image-reference.js';
import { LogFollowerHub } from './log-followers.js';

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
  /** Retry tuning for ArmCaller (tests shorten it). */
  retry?: { maxAttempts?: number; baseDelayMs?: number; maxDelayMs?: number };
}

interface Tracked {
  name: string;
  ref: PodRef;
  spec?: V1Pod['spec'];
  recordEvent?: PodContext['recordEvent'];
  /** When the group was last known to exist (PUT accepted, listed or fetched). */
  confirmedAt: number;
  lastGetAt: number;
  provisioningState?: string;
  status?: ProviderPodStatus;
  statusKey?: string;
  hot: boolean;
  terminal: boolean;
  vanished: boolean;
  /** deletePod is under way: not watched, and its absence is expected. */
  deleting?: boolean;
  events: EventDeduper;
}

const QUOTA_HOLD_MS = 30_000;
const DELETE_WAIT_MS = 120_000;

/** Local disk per container group (Microsoft Q&A: "around 50 GB", shared by its containers). */
const EPHEMERAL_GB_PER_GROUP = 50;

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
  private readonly tracked = new Map<string, Tracked>();
  private readonly listeners: StatusListener[] = [];
  private readonly statusBudget: TokenBucket;
  private readonly passIntervalMs: number;
  private readonly steadyRefreshMs: number;
  private readonly followers: LogFollowerHub;
  private timer: NodeJS.Timeout | undefined;
  private nextPassAt = 0;
  private running = false;
  private closed = false;
  private lastListAt = 0;
  private quotaHoldUntil = 0;
  private usageCache: { at: number; capacity: Record<string, string> } | undefined;
  private healthCache: { at: number; h: HealthStatus } | undefined;

  constructor(private readonly o: AciProviderOptions) {
    this.cfg = o.config;
    const tls = tlsOptionsFor(this.cfg);
    const caller = new ArmCaller({
      limits: this.cfg.limits,
      ...(o.metricsRegistry ? { registry: o.metricsRegistry } : {}),
      ...(o.onArmAttempt ? { onAttempt: o.onArmAttempt } : {}),
      ...o.retry,
    });
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
    };
    const perSecond = this.cfg.statusReadsPerSecond;
    this.statusBudget = new TokenBucket(Math.max(1, perSecond * 2), perSecond);
    this.passIntervalMs = o.passIntervalMs ?? 2_000;
    this.steadyRefreshMs = o.steadyRefreshMs ?? 30_000;
    this.followers = new LogFollowerHub({ pollMs: o.logPollMs ?? 2_000, maxFollowers: o.maxLogFollowers ?? 100 });
  }

  // ---- node ----------------------------------------------------------------

  async nodeInfo(): Promise<NodeInfoFromProvider> {
    return {
      capacity: await this.capacity(),
      // Groups are placed without availability zones; AKS labels such nodes zone "0".
      labels: { 'topology.kubernetes.io/region': this.cfg.region.toLowerCase(), 'topology.kubernetes.io/zone': '0' },
      operatingSystem: 'linux',
      architecture: 'amd64',
    };
  }

  /** Quota minus use from the usages API, plus what our own pods hold; the configured values otherwise. */
  private async capacity(): Promise<Record<string, string>> {
    const now = Date.now();
    if (this.usageCache && now - this.usageCache.at < 60_000) return this.usageCache.capacity;
    const capacity: Record<string, string> = { ...this.cfg.capacity };
    try {
      const usages = await this.arm.listUsage();
      const find = (re: RegExp) => usages.find((u) => re.test(u.name?.value ?? ''));
      const groups = find(/^ContainerGroups$/i);
      const cores = find(/^StandardCores$/i);
      const ours = [...this.tracked.values()].filter((t) => !t.vanished);
      if (groups?.limit !== undefined && groups.currentValue !== undefined) {
        const free = Math.max(0, groups.limit - groups.currentValue) + ours.length;
        capacity['pods'] = String(Math.min(free, Number(this.cfg.capacity.pods) || free));
      }
      if (cores?.limit !== undefined && cores.currentValue !== undefined) {
        capacity['cpu'] = String(Math.max(0, cores.limit - cores.currentValue) + ours.length * this.cfg.defaultCpu);
      }
    } catch {
      // The usages API is optional (not every cloud has it): keep the configured capacity.
    }
    // ACI gives each Linux group about 50 GB of local disk (images, writable layers, emptyDir).
    capacity['ephemeral-storage'] = `${(Number(capacity['pods']) || 0) * EPHEMERAL_GB_PER_GROUP}G`;
    this.usageCache = { at: now, capacity };
    return capacity;
  }

  async health(): Promise<HealthStatus> {
    const now = Date.now();
    if (this.healthCache && now - this.healthCache.at < 15_000) return this.healthCache.h;
    // Any recent success proves credential and endpoint; a probe would only queue behind
    // busy reads (e.g. a restart's GETs) and could time the node out for no reason.
    if (now - this.arm.caller.lastSuccessAt < 30_000) {
      const h = { ok: true, reason: 'AciReachable', message: `Azure Container Instances in ${this.cfg.region} is reachable` };
      this.healthCache = { at: now, h };
      return h;
    }
    let h: HealthStatus;
    try {
      await this.arm.listUsage();
      h = { ok: true, reason: 'AciReachable', message: `Azure Container Instances in ${this.cfg.region} is reachable` };
    } catch (e) {
      h = healthFromError(e);
    }
    this.healthCache = { at: now, h };
    return h;
  }

  // ---- pods ----------------------------------------------------------------

  private nameOf(ref: PodRef): string {
    return containerGroupName({ clusterId: this.o.clusterId, namespace: ref.namespace, podName: ref.name, podUid: ref.uid });
  }

  async createPod(pod: V1Pod, ctx: PodContext): Promise<void> {
    this.start();
    const ref = refOf(pod);
    checkImageReferences(pod, ctx);
    const { name, group, noIpReason, notes } = await podToContainerGroup(pod, ctx, this.mapping);
    const known = this.tracked.get(name);
    if (known) {
      if (known.vanished) {
        throw new PodRejectedError('ProviderGroupVanished', `container group ${name} was deleted outside Kubernetes; not re-creating it`);
      }
      known.spec = pod.spec;
      known.recordEvent = ctx.recordEvent;
      return;
    }
    // The core turns QuotaExceeded into the pod's waiting reason and a Warning event.
    if (Date.now() < this.quotaHoldUntil) {
      throw new TransientProviderError('QuotaExceeded', 'Azure Container Instances quota is exhausted; waiting for capacity', this.quotaHoldUntil - Date.now());
    }
    let created: ContainerGroup;
    try {
      created = await this.arm.createGroup(name, group);
    } catch (e) {
      if (e instanceof TransientProviderError && e.reason === 'QuotaExceeded') this.quotaHoldUntil = Date.now() + QUOTA_HOLD_MS;
      if (e instanceof ArmRequestError && e.statusCode === 400) {
        throw new PodRejectedError('ProviderRejected', `Azure Container Instances rejected the container group: ${e.message}`);
      }
      throw e;
    }
    const t = this.track(name, ref);
    t.spec = pod.spec;
    t.recordEvent = ctx.recordEvent;
    t.provisioningState = created.provisioningState;
    t.hot = true;
    // A kubelet gives every pod an IP; where ACI cannot, say so where the user looks.
    if (noIpReason) ctx.recordEvent('Warning', 'NoPodIP', noIpReason);
    for (const n of notes ?? []) ctx.recordEvent(n.type, n.reason, n.message);
    this.kick();
  }

  async updatePod(pod: V1Pod, ctx: PodContext): Promise<void> {
    // ACI cannot change a running group in place; only our bookkeeping follows the pod.
    const t = this.tracked.get(this.nameOf(refOf(pod)));
    if (t) {
      t.spec = pod.spec;
      t.recordEvent = ctx.recordEvent;
    }
  }

  async deletePod(pod: V1Pod, _gracePeriodSeconds: number): Promise<void> {
    const name = this.nameOf(refOf(pod));
    const t = this.tracked.get(name);
    if (t) t.deleting = true;
    if ((await this.arm.deleteGroup(name)) === 'accepted') {
      // ARM is still tearing it down: the contract is "nothing remains", so wait for the 404.
      const deadline = Date.now() + DELETE_WAIT_MS;
      while (await this.arm.getGroup(name)) {
        if (Date.now() > deadline) throw new TransientProviderError('DeletionInProgress', `container group ${name} is still being deleted`, 5_000);
        await new Promise((r) => setTimeout(r, 2_000));
      }
    }
    this.tracked.delete(name);
    // Capacity was freed: let a create held back by quota try again.
    this.quotaHoldUntil = 0;
  }

  async getPod(ref: PodRef): Promise<ProviderPod | undefined> {
    const name = this.nameOf(ref);
    const t = this.tracked.get(name);
    if (t?.status) return { ref: t.ref, status: t.status };
    const g = await this.arm.getGroup(name);
    if (!g || !this.isOurs(g)) return undefined;
    const tr = t ?? this.track(name, ref);
    this.absorb(tr, g, Date.now());
    return tr.status ? { ref: tr.ref, status: tr.status } : undefined;
  }

  /** The group's IP: private in a VNet (what the node reaches), public otherwise. */
  async portForwardAddress(ref: PodRef): Promise<string | undefined> {
    const p = await this.getPod(ref);
    return p?.status.podIP ?? p?.status.podIPs?.[0]?.ip;
  }

  /**
   * ACI cannot kill one container: it restarts the whole group in place (POST restart),
   * which for the usual one-container pod is what the kubelet does. See docs/decisions.md.
   */
  async restartContainer(ref: PodRef, _container: string): Promise<void> {
    const name = this.nameOf(ref);
    await this.arm.restartGroup(name);
    const t = this.tracked.get(name);
    if (t) t.hot = true;
    this.kick();
  }

  async listPods(): Promise<ProviderPod[]> {
    this.start();
    const groups = (await this.arm.listGroups()).filter((g) => this.isOurs(g));
    const results = await mapPool(groups, 16, async (listed) => {
      const name = listed.name ?? '';
      const id = identityFromTags(listed.tags)!;
      const ref = { namespace: id.namespace, name: id.podName, uid: id.podUid };
      const t = this.tracked.get(name) ?? this.track(name, ref);
      if (!t.status) {
        const g = await this.arm.getGroup(name);
        if (g) this.absorb(t, g, Date.now());
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

  onStatus(listener: StatusListener): void {
    this.listeners.push(listener);
    this.start();
  }

  // ---- logs / exec ---------------------------------------------------------

  async getContainerLogs(ref: PodRef, container: string, opts: LogOptions): Promise<Readable> {
    if (opts.previous) {
      throw new PodRejectedError('Unsupported', 'Azure Container Instances keeps no logs of a previous container instance');
    }
    const name = this.nameOf(ref);
    // A follower stops when the container can no longer write (terminated for good, or the group is gone).
    const isDone = (): boolean => {
      const t = this.tracked.get(name);
      if (!t) return true;
      if (t.vanished) return true;
      const cs = [...(t.status?.containerStatuses ?? []), ...(t.status?.initContainerStatuses ?? [])].find((c) => c.name === container);
      return t.terminal || (cs?.state?.terminated !== undefined && t.status?.phase !== 'Running' && t.status?.phase !== 'Pending');
    };
    return this.followers.open(`${name}/${container}`, (o) => this.arm.listLogs(name, container, o), opts, isDone);
  }

  /** ACI's exec runs one executable without arguments: see exec-command.ts for how an argv still runs exactly. */
  async exec(ref: PodRef, container: string, command: string[], streams: ExecStreams): Promise<ExecResult> {
    const plan = planExec(command, streams.tty);
    if (plan.kind === 'refused') throw new ExecShellUnavailableError(plan.message);
    const { webSocketUri, password } = await this.arm.executeCommand(this.nameOf(ref), container, plan.command, { rows: 24, cols: 80 });
    const ca = this.cfg.caFile ? tlsOptionsFor(this.cfg).ca : undefined;
    return execViaWebSocket(webSocketUri, password, streams, ca, plan.kind === 'shell' ? { line: plan.line, sentinel: plan.sentinel } : undefined);
  }

  async attach(ref: PodRef, container: string, streams: ExecStreams): Promise<ExecResult> {
    const { webSocketUri, password } = await this.arm.attach(this.nameOf(ref), container);
    return attachViaWebSocket(webSocketUri, password, streams, this.cfg.caFile ? tlsOptionsFor(this.cfg).ca : undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  // ---- status machinery ----------------------------------------------------

  private isOurs(g: ContainerGroup): boolean {
    const id = identityFromTags(g.tags);
    return id !== undefined && id.clusterId === this.o.clusterId && id.nodeName === this.o.nodeName;
  }

  private track(name: string, ref: PodRef): Tracked {
    const t: Tracked = {
      name,
      ref,
      confirmedAt: Date.now(),
      lastGetAt: 0,
      hot: true,
      terminal: false,
      vanished: false,
      events: new EventDeduper(),
    };
    this.tracked.set(name, t);
    return t;
  }

  /** Takes in a freshly fetched group: status, events, and whether it needs watching closely. */
  private absorb(t: Tracked, g: ContainerGroup, at: number): void {
    t.confirmedAt = Math.max(t.confirmedAt, at);
    t.lastGetAt = at;
    t.provisioningState = g.provisioningState;
    const status = groupToPodStatus(g, t.spec ? { spec: t.spec } : undefined);
    for (const ev of t.events.newEvents(g)) t.recordEvent?.(ev.type, ev.reason, ev.message);
    const allReady = (status.containerStatuses ?? []).every((c) => c.ready);
    t.hot = status.phase === 'Pending' || g.provisioningState !== 'Succeeded' || !allReady;
    t.terminal = (status.phase === 'Succeeded' || status.phase === 'Failed') && g.restartPolicy !== 'Always';
    this.setStatus(t, status);
  }

  private setStatus(t: Tracked, status: ProviderPodStatus): void {
    const key = JSON.stringify(status);
    if (key === t.statusKey) return;
    t.status = status;
    t.statusKey = key;
    for (const l of this.listeners) {
      try {
        l(t.ref, status);
      } catch {
        // A listener's failure is the core's to report; the next change is pushed anyway.
      }
    }
  }

  private start(): void {
    if (this.running || this.closed) return;
    this.running = true;
    this.schedule(0);
  }

  /** Runs a pass soon after a create, so a new pod's first status does not wait a whole interval. */
  private kick(): void {
    if (!this.running || this.closed || !this.timer) return;
    const soon = Math.min(this.passIntervalMs, 500);
    // Only ever bring a pass forward: a stream of creates must not postpone it forever.
    if (this.nextPassAt - Date.now() <= soon) return;
    clearTimeout(this.timer);
    this.schedule(soon);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.nextPassAt = Date.now() + ms;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.pass().finally(() => {
        if (!this.timer) this.schedule(this.passIntervalMs);
      });
    }, ms);
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    // Failures were counted by ArmCaller; the next pass tries again.
    if (Date.now() - this.lastListAt >= this.cfg.listIntervalMs) await this.listPass().catch(() => undefined);
    await this.getPass().catch(() => undefined);
  }

  private async listPass(): Promise<void> {
    const startedAt = Date.now();
    const groups = await this.arm.listGroups();
    this.lastListAt = Date.now();
    const present = new Set<string>();
    for (const g of groups) {
      if (!g.name || !this.isOurs(g)) continue;
      present.add(g.name);
      let t = this.tracked.get(g.name);
      if (!t) {
        // A group from before a restart that the core has not asked about yet.
        const id = identityFromTags(g.tags)!;
        t = this.track(g.name, { namespace: id.namespace, name: id.podName, uid: id.podUid });
      }
      t.confirmedAt = Math.max(t.confirmedAt, startedAt);
      if (g.provisioningState !== t.provisioningState) t.hot = true;
    }
    const missing = [...this.tracked.values()].filter((t) => !present.has(t.name) && !t.vanished && !t.deleting && t.confirmedAt < startedAt);
    await mapPool(missing, 8, async (t) => {
      // Confirm with a GET: the listing may be stale or the group may just have been deleted by us.
      const g = await this.arm.getGroup(t.name);
      if (!this.tracked.has(t.name) || t.deleting) return;
      if (g) {
        this.absorb(t, g, Date.now());
        return;
      }
      t.vanished = true;
      t.hot = false;
      if (t.terminal) return;
      this.setStatus(t, {
        ...(t.status ?? {}),
        phase: 'Failed',
        reason: 'ProviderGroupVanished',
        message: `The container group ${t.name} was deleted outside Kubernetes`,
      });
      t.recordEvent?.('Warning', 'ProviderGroupVanished', `The container group ${t.name} was deleted outside Kubernetes`);
    });
  }

  private async getPass(): Promise<void> {
    const now = Date.now();
    const live = [...this.tracked.values()].filter((t) => !t.vanished && !t.terminal && !t.deleting);
    const hot = live.filter((t) => t.hot && now - t.lastGetAt >= Math.min(this.passIntervalMs, 1_000));
    const steady = live.filter((t) => !t.hot && now - t.lastGetAt >= this.steadyRefreshMs);
    const order = [...hot.sort((a, b) => a.lastGetAt - b.lastGetAt), ...steady.sort((a, b) => a.lastGetAt - b.lastGetAt)];
    const budget = Math.floor(this.statusBudget.available());
    const chosen = order.slice(0, budget);
    await mapPool(chosen, 16, async (t) => {
      await this.statusBudget.take();
      const g = await this.arm.getGroup(t.name);
      if (!this.tracked.has(t.name) || t.vanished) return;
      if (g) this.absorb(t, g, Date.now());
      else t.lastGetAt = Date.now();
    });
  }
}

function refOf(pod: V1Pod): PodRef {
  const md = pod.metadata ?? {};
  if (!md.namespace || !md.name || !md.uid) throw new PodRejectedError('InvalidPod', 'pod needs metadata.namespace, name and uid', 'metadata');
  return { namespace: md.namespace, name: md.name, uid: md.uid };
}

function healthFromError(e: unknown): HealthStatus {
  const name = (e as { name?: string })?.name ?? '';
  const status = (e as { statusCode?: number })?.statusCode;
  const msg = (e as Error)?.message ?? String(e);
  if (/AuthenticationError|AuthenticationRequiredError|CredentialUnavailableError|AggregateAuthenticationError/.test(name) || status === 401 || status === 403) {
    // Keep only the stable part (the AADSTS code and text): trace ids and timestamps would
    // make every check look like a change and rewrite the node's status.
    const aad = /AADSTS\d+:[^.]*\./.exec(msg)?.[0];
    return {
      ok: false,
      reason: 'AzureCredentialInvalid',
      message: `Azure rejected the connector's credential${aad ? ` (${aad})` : status ? ` (HTTP ${status})` : ''}; check AZURE_CLIENT_ID, AZURE_CLIENT_KEY/AZURE_CLIENT_SECRET and AZURE_TENANT_ID, or the managed identity`,
    };
  }
  if (e instanceof TransientProviderError && e.reason === 'Throttled') {
    return { ok: true, reason: 'AciThrottled', message: 'ARM is throttling the connector; requests are paced' };
  }
  return { ok: false, reason: 'AciUnreachable', message: `Azure Container Instances is not reachable: ${firstLine(msg)}` };
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? '').slice(0, 300);
}
