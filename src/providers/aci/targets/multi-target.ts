/**
 * One node over several ACI targets: a Provider that holds one provider per target, places
 * each pod on one (placement.ts) and routes every later call for it there. The core sees one
 * provider and stays unchanged.
 *
 * Never doubled: a pod moves to another target only while no create of it could have reached
 * ARM on the first one, i.e. every try there was refused up front (quota, throttling). Any
 * other failure (a timeout, a lost answer, a 5xx) pins the pod where it is, so a group that
 * may exist is never made a second time elsewhere. After a restart the placement is read back
 * from each target's list of groups (listPods), and pods not found there are asked for
 * target by target.
 */
import type { Readable } from 'node:stream';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from 'pino';
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
  type PodUsage,
  type Provider,
  type ProviderEventListener,
  type ProviderPod,
  type StatusListener,
} from '../../../core/provider.js';
import { parseQuantity } from '../../../common/quantity.js';
import { silentLogger } from '../../../common/logger.js';
import { errorMessage } from '../../../common/errors.js';
import type { CreationWindowLimit } from './config.js';
import { candidatesFor, chooseTarget, CreationLedger, type TargetRoom } from './placement.js';

export interface TargetProvider {
  name: string;
  region: string;
  provider: Provider;
  creationWindows: readonly CreationWindowLimit[];
}

export interface MultiTargetOptions {
  targets: readonly TargetProvider[];
  log?: Logger;
  now?: () => number;
  /** How long a refused target is passed over when it gave no Retry-After (ms). */
  refusedHoldMs?: number;
}

/**
 * Reasons of TransientProviderErrors that prove ARM created nothing (refused up front: quota,
 * throttling), so the pod may go elsewhere.
 */
export const REFUSED_REASONS: ReadonlySet<string> = new Set(['QuotaExceeded', 'Throttled']);
/**
 * Deferrals by the target's own pacer (a full creation window): the pod holds a slot in that
 * target's line, so it stays (moving it would leave its slot taken there and make it queue
 * again elsewhere); new pods avoid the target until its line is through.
 */
export const HELD_REASONS: ReadonlySet<string> = new Set(['CreationPaced']);
const CAPACITY_REFRESH_MS = 30_000;

interface Target extends TargetProvider {
  ledger: CreationLedger;
  healthy: boolean;
  /** Groups the quota allowed this node at the last capacity read, and how many it held then. */
  capacityPods?: number;
  placedAtRead: number;
  capacityAt: number;
  /** Passed over for new pods until then (a refusal). */
  refusedUntil: number;
}

interface Placement {
  target: string;
  /** A create of it may have reached ARM there (or the pod named it): it never moves. */
  sticky: boolean;
  /** Counted in the target's creation ledger. */
  counted: boolean;
}

const keyOf = (ref: PodRef): string => `${ref.namespace}/${ref.name}/${ref.uid}`;

function refOf(pod: V1Pod): PodRef {
  const md = pod.metadata ?? {};
  if (!md.namespace || !md.name || !md.uid)
    throw new PodRejectedError('InvalidPod', 'pod needs metadata.namespace, name and uid', 'metadata');
  return { namespace: md.namespace, name: md.name, uid: md.uid };
}

export class MultiTargetProvider implements Provider {
  private readonly targets: Target[];
  private readonly placements = new Map<string, Placement>();
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly refusedHoldMs: number;

  constructor(o: MultiTargetOptions) {
    if (o.targets.length === 0) throw new Error('a multi-target provider needs at least one target');
    this.targets = o.targets.map((t) => ({
      ...t,
      ledger: new CreationLedger(t.creationWindows),
      healthy: true,
      placedAtRead: 0,
      capacityAt: 0,
      refusedUntil: 0,
    }));
    this.log = o.log ?? silentLogger();
    this.now = o.now ?? Date.now;
    this.refusedHoldMs = o.refusedHoldMs ?? 30_000;
  }

  /** Where a pod is, or undefined when not placed (yet, or not since a restart). */
  placementOf(ref: PodRef): string | undefined {
    return this.placements.get(keyOf(ref))?.target;
  }

  private target(name: string): Target {
    const t = this.targets.find((x) => x.name === name);
    if (!t) throw new Error(`no target named '${name}'`);
    return t;
  }

  private placedOn(name: string): number {
    let n = 0;
    for (const p of this.placements.values()) if (p.target === name) n += 1;
    return n;
  }

  private remember(ref: PodRef, target: string): void {
    const k = keyOf(ref);
    const p = this.placements.get(k);
    if (p?.target === target) return;
    // Found in a target's groups: it exists there, so it stays.
    this.placements.set(k, { target, sticky: true, counted: true });
  }

  // ---- node ----------------------------------------------------------------

  /** Each target's capacity summed (its quota's room), the labels they agree on. */
  async nodeInfo(): Promise<NodeInfoFromProvider> {
    const infos = await Promise.allSettled(this.targets.map((t) => t.provider.nodeInfo()));
    const got: { t: Target; info: NodeInfoFromProvider }[] = [];
    infos.forEach((r, i) => {
      const t = this.targets[i]!;
      if (r.status === 'fulfilled') {
        got.push({ t, info: r.value });
        this.noteCapacity(t, r.value);
      } else this.log.warn({ target: t.name, err: errorMessage(r.reason) }, 'reading a target’s node facts failed');
    });
    const first = got[0];
    if (!first) throw (infos[0] as PromiseRejectedResult).reason;
    return {
      capacity: sumResources(got.map((g) => g.info.capacity)),
      ...(got.every((g) => g.info.allocatable)
        ? { allocatable: sumResources(got.map((g) => g.info.allocatable ?? {})) }
        : {}),
      labels: commonLabels(got.map((g) => g.info.labels)),
      operatingSystem: first.info.operatingSystem,
      architecture: first.info.architecture,
    };
  }

  private noteCapacity(t: Target, info: NodeInfoFromProvider): void {
    const pods = info.capacity['pods'];
    if (pods === undefined) return;
    const n = Number(pods);
    if (!Number.isFinite(n)) return;
    t.capacityPods = n;
    t.placedAtRead = this.placedOn(t.name);
    t.capacityAt = this.now();
  }

  /**
   * Ready while any target can run pods: one target's outage must not make the taint manager
   * evict the pods of the others. The targets that fail are named in the message (and get
   * no new pods while they fail).
   */
  async health(): Promise<HealthStatus> {
    const all = await Promise.all(
      this.targets.map(async (t) => {
        let h: HealthStatus;
        try {
          h = await t.provider.health();
        } catch (e) {
          h = { ok: false, reason: 'ProviderUnreachable', message: errorMessage(e) };
        }
        t.healthy = h.ok;
        return { t, h };
      }),
    );
    const failing = all.filter((x) => !x.h.ok);
    const ok = all.filter((x) => x.h.ok);
    if (failing.length === 0)
      return {
        ok: true,
        reason: all[0]!.h.reason,
        message: `every ACI target is reachable: ${all.map((x) => `${x.t.name} (${x.t.region})`).join(', ')}`,
      };
    const failed = failing.map((x) => `target ${x.t.name}: ${x.h.message}`).join('; ');
    if (ok.length === 0) return { ok: false, reason: failing[0]!.h.reason, message: failed };
    return {
      ok: true,
      reason: ok[0]!.h.reason,
      message: `${ok.map((x) => x.t.name).join(', ')} reachable; new pods avoid the others (${failed})`,
    };
  }

  // ---- placement -----------------------------------------------------------

  private async rooms(): Promise<TargetRoom[]> {
    const now = this.now();
    await Promise.all(
      this.targets
        .filter((t) => t.capacityPods === undefined || now - t.capacityAt > CAPACITY_REFRESH_MS)
        .map(async (t) => {
          try {
            this.noteCapacity(t, await t.provider.nodeInfo());
          } catch {
            // Keep the last figure; placement still has the windows.
          }
        }),
    );
    return this.targets.map((t) => {
      const placed = this.placedOn(t.name);
      const w = t.ledger.room(now);
      const refused = t.refusedUntil > now;
      return {
        name: t.name,
        region: t.region,
        healthy: t.healthy,
        quotaRoom:
          t.capacityPods === undefined
            ? Number.MAX_SAFE_INTEGER
            : Math.max(0, t.capacityPods - Math.max(0, placed - t.placedAtRead)),
        windowRoom: refused ? 0 : w.room,
        freesAt: refused ? Math.max(w.freesAt, t.refusedUntil) : w.freesAt,
        placed,
      };
    });
  }

  // ---- pods ----------------------------------------------------------------

  /**
   * What a container gets, from the pod's target, or the first target before it is placed (the
   * core asks before createPod places it; targets share the mapping's resource defaults).
   */
  containerResource(pod: V1Pod, container: string, resource: string): number | undefined {
    const placed = this.placements.get(keyOf(refOf(pod)));
    const t = placed ? this.target(placed.target) : this.targets[0];
    return t?.provider.containerResource?.(pod, container, resource);
  }

  async createPod(pod: V1Pod, ctx: PodContext): Promise<void> {
    const ref = refOf(pod);
    const k = keyOf(ref);
    const tried = new Set<string>();
    for (;;) {
      let p = this.placements.get(k);
      if (!p) {
        const req = candidatesFor(pod, await this.rooms());
        const chosen = chooseTarget(req.candidates, tried) ?? chooseTarget(req.candidates);
        if (!chosen) throw new TransientProviderError('NoAciTarget', 'no ACI target can take the pod now');
        p = { target: chosen.name, sticky: req.pinned, counted: false };
        this.placements.set(k, p);
        this.log.debug({ pod: k, target: chosen.name }, 'pod placed');
      }
      const t = this.target(p.target);
      try {
        await t.provider.createPod(pod, ctx);
        if (!p.counted) t.ledger.record(this.now());
        p.counted = true;
        p.sticky = true;
        return;
      } catch (e) {
        if (e instanceof TransientProviderError && HELD_REASONS.has(e.reason)) {
          t.refusedUntil = Math.max(t.refusedUntil, this.now() + (e.retryAfterMs ?? 0));
          throw e;
        }
        const refused = e instanceof TransientProviderError && REFUSED_REASONS.has(e.reason);
        if (!refused) {
          // It may have reached ARM there (or the pod is at fault): it stays.
          if (!(e instanceof PodRejectedError)) p.sticky = true;
          throw e;
        }
        t.refusedUntil = this.now() + (e.retryAfterMs ?? this.refusedHoldMs);
        if (p.sticky) throw e;
        this.placements.delete(k);
        tried.add(t.name);
        // Another target with room takes it now; with none, the core retries later (and places again).
        const others = candidatesFor(pod, await this.rooms()).candidates.filter(
          (c) => !tried.has(c.name) && Math.min(c.quotaRoom, c.windowRoom) > 0,
        );
        if (others.length === 0) throw e;
        this.log.info({ pod: k, from: t.name, reason: e.reason }, 'target refused the pod; placing it on another');
      }
    }
  }

  /** The target that holds the pod: its placement, or the first target that has it. */
  private async locate(ref: PodRef): Promise<Target | undefined> {
    const known = this.placements.get(keyOf(ref));
    if (known) return this.target(known.target);
    for (const t of this.targets) {
      if (await t.provider.getPod(ref)) {
        this.remember(ref, t.name);
        return t;
      }
    }
    return undefined;
  }

  async updatePod(pod: V1Pod, ctx: PodContext): Promise<void> {
    const t = await this.locate(refOf(pod));
    if (t) await t.provider.updatePod(pod, ctx);
  }

  async deletePod(pod: V1Pod, gracePeriodSeconds: number): Promise<void> {
    const ref = refOf(pod);
    const known = this.placements.get(keyOf(ref));
    // Not placed since a restart: it may be in any target (each delete is idempotent).
    const where = known ? [this.target(known.target)] : this.targets;
    await Promise.all(where.map((t) => t.provider.deletePod(pod, gracePeriodSeconds)));
    this.placements.delete(keyOf(ref));
  }

  async getPod(ref: PodRef): Promise<ProviderPod | undefined> {
    const known = this.placements.get(keyOf(ref));
    if (known) return this.target(known.target).provider.getPod(ref);
    for (const t of this.targets) {
      const p = await t.provider.getPod(ref);
      if (p) {
        this.remember(ref, t.name);
        return p;
      }
    }
    return undefined;
  }

  /**
   * Every target's pods. One target that cannot list fails the whole list: the core would
   * otherwise take that target's pods for lost (and fail or re-create them).
   */
  async listPods(): Promise<ProviderPod[]> {
    const lists = await Promise.all(
      this.targets.map(async (t) => {
        try {
          return { t, pods: await t.provider.listPods() };
        } catch (e) {
          throw new TransientProviderError(
            e instanceof TransientProviderError ? e.reason : 'ProviderUnavailable',
            `listing target ${t.name}: ${errorMessage(e)}`,
            e instanceof TransientProviderError ? e.retryAfterMs : undefined,
            { cause: e },
          );
        }
      }),
    );
    const out: ProviderPod[] = [];
    for (const { t, pods } of lists) {
      for (const p of pods) {
        this.remember(p.ref, t.name);
        out.push(p);
      }
    }
    return out;
  }

  onStatus(listener: StatusListener): void {
    for (const t of this.targets) {
      const name = t.name;
      t.provider.onStatus((ref, status) => {
        this.remember(ref, name);
        listener(ref, status);
      });
    }
  }

  onEvent(listener: ProviderEventListener): void {
    for (const t of this.targets) t.provider.onEvent(listener);
  }

  // ---- streams, by where the pod lives ----------------------------------------

  private async holder(ref: PodRef): Promise<Provider> {
    const t = await this.locate(ref);
    if (!t) throw new Error(`pod ${ref.namespace}/${ref.name} is in none of this node's ACI targets`);
    return t.provider;
  }

  async getContainerLogs(ref: PodRef, container: string, opts: LogOptions): Promise<Readable> {
    const p = await this.holder(ref);
    if (!p.getContainerLogs) throw new Error('this target serves no logs');
    return p.getContainerLogs(ref, container, opts);
  }

  async exec(ref: PodRef, container: string, command: string[], streams: ExecStreams): Promise<ExecResult> {
    const p = await this.holder(ref);
    if (!p.exec) throw new Error('this target runs no exec');
    return p.exec(ref, container, command, streams);
  }

  async attach(ref: PodRef, container: string, streams: ExecStreams): Promise<ExecResult> {
    const p = await this.holder(ref);
    if (!p.attach) throw new Error('this target runs no attach');
    return p.attach(ref, container, streams);
  }

  async portForwardAddress(ref: PodRef): Promise<string | undefined> {
    const t = await this.locate(ref);
    return t?.provider.portForwardAddress?.(ref);
  }

  async restartContainer(ref: PodRef, container: string): Promise<string[]> {
    const p = await this.holder(ref);
    if (!p.restartContainer) throw new Error('this target cannot restart containers');
    return p.restartContainer(ref, container);
  }

  /** Every target's figures; a target whose read fails is left out this time (all failing is an error). */
  async getPodStats(): Promise<PodUsage[]> {
    const results = await Promise.allSettled(
      this.targets.map(async (t) => (t.provider.getPodStats ? t.provider.getPodStats() : [])),
    );
    const out: PodUsage[] = [];
    let failure: unknown;
    for (const r of results) {
      if (r.status === 'fulfilled') out.push(...r.value);
      else failure ??= r.reason;
    }
    if (out.length === 0 && failure !== undefined)
      throw failure instanceof Error ? failure : new Error(`reading usage failed: ${errorMessage(failure)}`);
    return out;
  }

  async close(): Promise<void> {
    await Promise.all(
      this.targets.map(async (t) => {
        await t.provider.close?.();
      }),
    );
  }
}

/** Sums resource quantities per name (a name some targets lack counts what the others have). */
export function sumResources(list: readonly Record<string, string>[]): Record<string, string> {
  const totals = new Map<string, number>();
  for (const r of list) {
    for (const [k, v] of Object.entries(r)) {
      let n: number;
      try {
        n = parseQuantity(v);
      } catch {
        continue;
      }
      totals.set(k, (totals.get(k) ?? 0) + n);
    }
  }
  const out: Record<string, string> = {};
  for (const [k, n] of totals) out[k] = formatQuantity(k, n);
  return out;
}

const BYTE_SUFFIXES: readonly (readonly [string, number])[] = [
  ['Ti', 2 ** 40],
  ['Gi', 2 ** 30],
  ['Mi', 2 ** 20],
  ['T', 1e12],
  ['G', 1e9],
  ['M', 1e6],
  ['Ki', 2 ** 10],
];

/** Memory and storage with the largest suffix that is exact, everything else as a plain (milli) number. */
function formatQuantity(name: string, n: number): string {
  if (Number.isInteger(n)) {
    if (name === 'memory' || name.includes('storage'))
      for (const [suffix, f] of BYTE_SUFFIXES) if (n >= f && n % f === 0) return `${n / f}${suffix}`;
    return String(n);
  }
  return `${Math.round(n * 1000)}m`;
}

/** Labels every target agrees on: a node over several regions carries no region label (it has none). */
function commonLabels(list: readonly Record<string, string>[]): Record<string, string> {
  const [first, ...rest] = list;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(first ?? {})) if (rest.every((l) => l[k] === v)) out[k] = v;
  return out;
}
