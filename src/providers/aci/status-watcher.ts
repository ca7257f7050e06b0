/**
 * The status watcher: what the provider knows of each of its container groups, kept fresh
 * without polling every pod.
 *
 * A pass every `passIntervalMs` GETs only the groups whose state can change soon ("hot":
 * provisioning, pending, not ready), and refreshes steady ones in the remaining status
 * budget, oldest first. Every `listIntervalMs` one paged list of the resource group notices
 * provisioning changes, groups adopted after a restart, and groups deleted behind our back.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { ContainerGroup } from '@azure/arm-containerinstance';
import type { Logger } from 'pino';
import type {
  PodRef,
  ProviderEvent,
  ProviderEventListener,
  ProviderPodStatus,
  StatusListener,
} from '../../core/provider.js';
import { FailureStreak } from '../../common/failure-log.js';
import type { AciArm } from './arm/arm-client.js';
import { EventDeduper } from './mapping/events.js';
import { identityFromTags } from './naming.js';
import { mapPool } from '../../common/pool.js';
import { groupToPodStatus } from './mapping/status.js';
import { TokenBucket } from '../../common/token-bucket.js';

export interface Tracked {
  name: string;
  ref: PodRef;
  spec?: V1Pod['spec'];
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
  /**
   * Found in ACI rather than created by this process (adopted after a restart): the events
   * the group holds at first sight were reported by the process that created it, so they
   * only seed the deduper; later ones go out.
   */
  adopted: boolean;
}

export interface StatusWatcherOptions {
  arm: AciArm;
  clusterId: string;
  nodeName: string;
  /** How often one list of the resource group runs (ms). */
  listIntervalMs: number;
  /** GETs per second the passes may spend (a burst of twice that). */
  statusReadsPerSecond: number;
  /** How often hot groups are looked at (ms). */
  passIntervalMs: number;
  /** How often a steady Running group is refreshed at most (ms). */
  steadyRefreshMs: number;
  log: Logger;
}

export class StatusWatcher {
  readonly tracked = new Map<string, Tracked>();
  private readonly listeners: StatusListener[] = [];
  private readonly eventListeners: ProviderEventListener[] = [];
  private readonly statusBudget: TokenBucket;
  private timer: NodeJS.Timeout | undefined;
  private nextPassAt = 0;
  private running = false;
  private closed = false;
  private lastListAt = 0;
  private completedPasses = 0;
  private passing = false;
  private passWaiters: (() => void)[] = [];
  /** Failed GETs of the pass under way (each is retried by a later pass). */
  private readErrors: unknown[] = [];
  private readonly listFailures: FailureStreak;
  private readonly readFailures: FailureStreak;

  constructor(private readonly o: StatusWatcherOptions) {
    const perSecond = o.statusReadsPerSecond;
    this.statusBudget = new TokenBucket({ perSecond, burst: Math.max(1, perSecond * 2) });
    this.listFailures = new FailureStreak(o.log, 'listing the container groups for status');
    this.readFailures = new FailureStreak(o.log, 'reading container groups for status');
  }

  /** Passes completed so far (a test's positive signal that the watcher looked). */
  get passes(): number {
    return this.completedPasses;
  }

  /** Resolves once a pass that starts after this call has completed. */
  afterNextPass(): Promise<void> {
    const target = this.completedPasses + (this.passing ? 2 : 1);
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.completedPasses >= target || this.closed) resolve();
        else this.passWaiters.push(check);
      };
      check();
    });
  }

  onStatus(listener: StatusListener): void {
    this.listeners.push(listener);
    this.start();
  }

  onEvent(listener: ProviderEventListener): void {
    this.eventListeners.push(listener);
  }

  private emitEvent(ref: PodRef, ev: ProviderEvent): void {
    for (const l of this.eventListeners) {
      try {
        l(ref, ev);
      } catch {
        // As for statuses: the core's to report.
      }
    }
  }

  isOurs(g: ContainerGroup): boolean {
    const id = identityFromTags(g.tags);
    return id !== undefined && id.clusterId === this.o.clusterId && id.nodeName === this.o.nodeName;
  }

  track(name: string, ref: PodRef, adopted = true): Tracked {
    const t: Tracked = {
      adopted,
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
  absorb(t: Tracked, g: ContainerGroup, at: number): void {
    t.confirmedAt = Math.max(t.confirmedAt, at);
    t.lastGetAt = at;
    t.provisioningState = g.provisioningState;
    const status = groupToPodStatus(g, t.spec ? { spec: t.spec } : undefined);
    const events = t.events.newEvents(g);
    if (t.adopted) t.adopted = false;
    else for (const ev of events) this.emitEvent(t.ref, ev);
    // Running init containers are native sidecars here (a regular one keeps the pod Pending, hot anyway).
    const allReady = [
      ...(status.containerStatuses ?? []),
      ...(status.initContainerStatuses ?? []).filter((c) => c.state?.running),
    ].every((c) => c.ready);
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

  start(): void {
    if (this.running || this.closed) return;
    this.running = true;
    this.schedule(0);
  }

  /** Runs a pass soon after a create, so a new pod's first status does not wait a whole interval. */
  kick(): void {
    if (!this.running || this.closed || !this.timer) return;
    const soon = Math.min(this.o.passIntervalMs, 500);
    // Only ever bring a pass forward: a stream of creates must not postpone it forever.
    if (this.nextPassAt - Date.now() <= soon) return;
    clearTimeout(this.timer);
    this.schedule(soon);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.wakePassWaiters();
  }

  private wakePassWaiters(): void {
    const waiters = this.passWaiters;
    this.passWaiters = [];
    for (const w of waiters) w();
  }

  /** A GET for the status passes: a failure is kept for the pass's one log line, and rethrown. */
  private async read(name: string): Promise<ContainerGroup | undefined> {
    try {
      return await this.o.arm.getGroup(name);
    } catch (e) {
      this.readErrors.push(e);
      throw e;
    }
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    this.nextPassAt = Date.now() + ms;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.pass().finally(() => {
        if (!this.timer) this.schedule(this.o.passIntervalMs);
      });
    }, ms);
    this.timer.unref();
  }

  private async pass(): Promise<void> {
    // ArmCaller counted and retried each failure; the next pass tries again. Each kind of
    // failure is logged once per streak, not once per pass.
    this.passing = true;
    this.readErrors = [];
    try {
      if (Date.now() - this.lastListAt >= this.o.listIntervalMs) {
        await this.listPass().then(
          () => this.listFailures.succeeded(),
          (e: unknown) => this.listFailures.failed(e),
        );
      }
      await this.getPass().catch((e: unknown) => this.readErrors.push(e));
      if (this.readErrors.length > 0)
        this.readFailures.failed(this.readErrors[0], { failedReads: this.readErrors.length });
      else this.readFailures.succeeded();
    } finally {
      this.passing = false;
      this.completedPasses += 1;
      this.wakePassWaiters();
    }
  }

  private async listPass(): Promise<void> {
    const startedAt = Date.now();
    const groups = await this.o.arm.listGroups();
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
    const missing = [...this.tracked.values()].filter(
      (t) => !present.has(t.name) && !t.vanished && !t.deleting && t.confirmedAt < startedAt,
    );
    await mapPool(missing, 8, async (t) => {
      // Confirm with a GET: the listing may be stale or the group may just have been deleted by us.
      const g = await this.read(t.name);
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
      this.emitEvent(t.ref, {
        type: 'Warning',
        reason: 'ProviderGroupVanished',
        message: `The container group ${t.name} was deleted outside Kubernetes`,
      });
    });
  }

  private async getPass(): Promise<void> {
    const now = Date.now();
    const live = [...this.tracked.values()].filter((t) => !t.vanished && !t.terminal && !t.deleting);
    const hot = live.filter((t) => t.hot && now - t.lastGetAt >= Math.min(this.o.passIntervalMs, 1_000));
    const steady = live.filter((t) => !t.hot && now - t.lastGetAt >= this.o.steadyRefreshMs);
    const order = [
      ...hot.sort((a, b) => a.lastGetAt - b.lastGetAt),
      ...steady.sort((a, b) => a.lastGetAt - b.lastGetAt),
    ];
    const budget = Math.floor(this.statusBudget.available());
    const chosen = order.slice(0, budget);
    await mapPool(chosen, 16, async (t) => {
      await this.statusBudget.take();
      const g = await this.read(t.name);
      if (!this.tracked.has(t.name) || t.vanished) return;
      if (g) this.absorb(t, g, Date.now());
      else t.lastGetAt = Date.now();
    });
  }
}
