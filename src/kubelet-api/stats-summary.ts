/**
 * `/stats/summary` in the kubelet's stats/v1alpha1 shape (k8s.io/kubelet
 * pkg/apis/stats/v1alpha1, v0.36): the node, and every pod bound to it with
 * its containers, CPU (usageNanoCores, usageCoreNanoSeconds) and memory
 * (workingSetBytes, usageBytes). Go's encoder leaves out nil pointers
 * (`omitempty`) but writes `containers` always, so a pod without figures still
 * lists its containers.
 *
 * Backends measure differently: ACI reports a per-minute average rate
 * (millicores), podman a cumulative CPU time. {@link UsageTracker} fills in the
 * figure a backend lacks from successive samples, so both figures are always
 * consistent with each other: the cumulative one is the integral of the rate.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { ContainerUsage, PodUsage } from '../core/provider.js';

export interface CpuStats {
  time: string;
  usageNanoCores?: number;
  usageCoreNanoSeconds?: number;
}

export interface MemoryStats {
  time: string;
  usageBytes?: number;
  workingSetBytes?: number;
}

export interface ContainerStats {
  name: string;
  startTime: string;
  cpu?: CpuStats;
  memory?: MemoryStats;
}

export interface PodStats {
  podRef: { name: string; namespace: string; uid: string };
  startTime: string;
  containers: ContainerStats[];
  cpu?: CpuStats;
  memory?: MemoryStats;
}

export interface NodeStats {
  nodeName: string;
  startTime: string;
  cpu?: CpuStats;
  memory?: MemoryStats;
}

export interface Summary {
  node: NodeStats;
  pods: PodStats[];
}

/** Go's zero metav1.Time, as the kubelet writes an unknown start time. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

/**
 * A time kept to the millisecond inside (rates need it); {@link summaryJson}
 * writes metav1.Time's second precision.
 */
function isoTime(t: string | Date | undefined): string | undefined {
  if (t === undefined) return undefined;
  const ms = t instanceof Date ? t.getTime() : Date.parse(t);
  if (Number.isNaN(ms)) return undefined;
  return new Date(ms).toISOString();
}

/** The summary as the kubelet encodes it: metav1.Time is RFC 3339 to the second, in UTC. */
export function summaryJson(s: Summary): string {
  return JSON.stringify(s, (key, value: unknown) =>
    (key === 'time' || key === 'startTime') && typeof value === 'string' && value !== ZERO_TIME
      ? value.replace(/\.\d+Z$/, 'Z')
      : value,
  );
}

interface Sample {
  timeMs: number;
  cumulativeNs: number;
  rateNanoCores: number;
}

/** A container's CPU figures, both filled in. */
export interface CpuFigures {
  usageNanoCores: number;
  usageCoreNanoSeconds: number;
}

/**
 * Derives the missing CPU figure per container from the samples it has seen:
 * a rate from two cumulative readings, a cumulative time by integrating the
 * rate. Entries of containers that disappear are dropped on the next sample set.
 */
export class UsageTracker {
  private samples = new Map<string, Sample>();

  /** Updates the tracker with one round of samples; returns the figures per `uid/container`. */
  update(pods: readonly PodUsage[]): Map<string, CpuFigures> {
    const next = new Map<string, Sample>();
    const out = new Map<string, CpuFigures>();
    for (const pod of pods) {
      for (const c of pod.containers) {
        const key = `${pod.ref.uid}/${c.name}`;
        const s = this.sample(this.samples.get(key), c);
        if (!s) continue;
        next.set(key, s);
        out.set(key, { usageNanoCores: Math.round(s.rateNanoCores), usageCoreNanoSeconds: Math.round(s.cumulativeNs) });
      }
    }
    this.samples = next;
    return out;
  }

  private sample(prev: Sample | undefined, c: ContainerUsage): Sample | undefined {
    const timeMs = Date.parse(c.time);
    if (Number.isNaN(timeMs)) return undefined;
    const hasRate = c.usageNanoCores !== undefined;
    const hasCum = c.usageCoreNanoSeconds !== undefined;
    if (!hasRate && !hasCum) return undefined;
    // The same reading again (the provider cached it): nothing moved.
    if (prev && timeMs <= prev.timeMs) {
      if (hasCum && c.usageCoreNanoSeconds! < prev.cumulativeNs) return this.fresh(c, timeMs); // restarted
      return prev;
    }
    if (hasRate && hasCum) return { timeMs, cumulativeNs: c.usageCoreNanoSeconds!, rateNanoCores: c.usageNanoCores! };
    if (hasCum) {
      const cum = c.usageCoreNanoSeconds!;
      // A counter that went down is a restarted container: start over.
      if (!prev || cum < prev.cumulativeNs) return this.fresh(c, timeMs);
      const rate = ((cum - prev.cumulativeNs) / (timeMs - prev.timeMs)) * 1000; // ns of CPU per ms of wall time → per second: nanocores
      return { timeMs, cumulativeNs: cum, rateNanoCores: rate };
    }
    const rate = c.usageNanoCores!;
    if (!prev) return this.fresh(c, timeMs);
    // The rate is an average over the window since the previous reading (ACI: a minute).
    return { timeMs, cumulativeNs: prev.cumulativeNs + (rate * (timeMs - prev.timeMs)) / 1000, rateNanoCores: rate };
  }

  /** A first reading: the rate is taken to have held since the container started (at least a second). */
  private fresh(c: ContainerUsage, timeMs: number): Sample {
    const started = c.startTime ? Date.parse(c.startTime) : NaN;
    const elapsedMs = Math.max(1000, Number.isNaN(started) ? 0 : timeMs - started);
    if (c.usageCoreNanoSeconds !== undefined) {
      const rate = c.usageNanoCores ?? (c.usageCoreNanoSeconds / elapsedMs) * 1000;
      return { timeMs, cumulativeNs: c.usageCoreNanoSeconds, rateNanoCores: rate };
    }
    const rate = c.usageNanoCores ?? 0;
    return { timeMs, cumulativeNs: (rate * elapsedMs) / 1000, rateNanoCores: rate };
  }
}

function add(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return a + b;
}

function later(a: string | undefined, b: string): string {
  return a === undefined || Date.parse(b) > Date.parse(a) ? b : a;
}

/** Sums CPU and memory of parts into one total (a pod from its containers, the node from its pods). */
function total(parts: readonly { cpu?: CpuStats; memory?: MemoryStats }[]): { cpu?: CpuStats; memory?: MemoryStats } {
  let cpu: CpuStats | undefined;
  let memory: MemoryStats | undefined;
  for (const p of parts) {
    if (p.cpu) {
      cpu = {
        time: later(cpu?.time, p.cpu.time),
        usageNanoCores: add(cpu?.usageNanoCores, p.cpu.usageNanoCores),
        usageCoreNanoSeconds: add(cpu?.usageCoreNanoSeconds, p.cpu.usageCoreNanoSeconds),
      };
    }
    if (p.memory) {
      memory = {
        time: later(memory?.time, p.memory.time),
        usageBytes: add(memory?.usageBytes, p.memory.usageBytes),
        workingSetBytes: add(memory?.workingSetBytes, p.memory.workingSetBytes),
      };
    }
  }
  return { ...(cpu ? { cpu: dropUndefined(cpu) } : {}), ...(memory ? { memory: dropUndefined(memory) } : {}) };
}

function dropUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function containerStats(
  name: string,
  startTime: string | undefined,
  usage: ContainerUsage | undefined,
  cpu: CpuFigures | undefined,
): ContainerStats {
  const out: ContainerStats = { name, startTime: isoTime(usage?.startTime ?? startTime) ?? ZERO_TIME };
  const time = usage ? isoTime(usage.time) : undefined;
  if (time && cpu) out.cpu = { time, ...cpu };
  if (time && usage && (usage.workingSetBytes !== undefined || usage.usageBytes !== undefined)) {
    out.memory = dropUndefined({
      time,
      usageBytes: usage.usageBytes ?? usage.workingSetBytes,
      workingSetBytes: usage.workingSetBytes ?? usage.usageBytes,
    });
  }
  return out;
}

export interface SummaryInput {
  nodeName: string;
  /** When the node agent started: the node's start time. */
  nodeStartTime: Date;
  /** Every pod bound to the node (the core's cache). */
  pods: readonly V1Pod[];
  /** The provider's readings, or empty without a getPodStats hook. */
  usage: readonly PodUsage[];
  /** From {@link UsageTracker.update} over the same usage. */
  cpu: ReadonlyMap<string, CpuFigures>;
}

/**
 * Builds the summary. Pods come from the core's cache (the API's view of what
 * runs here), figures from the provider; a pod that has not started yet is left
 * out, as the kubelet lists only pods its runtime has.
 */
export function buildSummary(i: SummaryInput): Summary {
  const byUid = new Map(i.usage.map((u) => [u.ref.uid, u]));
  const pods: PodStats[] = [];
  for (const pod of i.pods) {
    const uid = pod.metadata?.uid;
    if (!uid || !pod.metadata?.name) continue;
    const usage = byUid.get(uid);
    if (!pod.status?.startTime && !usage) continue;
    const statuses = new Map(
      [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].map((s) => [s.name, s]),
    );
    const readings = new Map((usage?.containers ?? []).map((c) => [c.name, c]));
    const containers = (pod.spec?.containers ?? []).map((c) => {
      const st = statuses.get(c.name)?.state;
      const started = st?.running?.startedAt ?? st?.terminated?.startedAt;
      return containerStats(
        c.name,
        started === undefined ? undefined : new Date(started).toISOString(),
        readings.get(c.name),
        i.cpu.get(`${uid}/${c.name}`),
      );
    });
    pods.push({
      podRef: { name: pod.metadata.name, namespace: pod.metadata.namespace ?? 'default', uid },
      startTime: isoTime(pod.status?.startTime) ?? ZERO_TIME,
      containers,
      ...total(containers),
    });
  }
  const node: NodeStats = { nodeName: i.nodeName, startTime: isoTime(i.nodeStartTime) ?? ZERO_TIME, ...total(pods) };
  return { node, pods };
}
