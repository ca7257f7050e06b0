/**
 * Azure Monitor's view of container groups for the emulator: per group and
 * container, one bucket per minute (Azure's PT1M grain) of the samples the
 * runtime gave, from which averages, minimums, maximums, totals and counts are
 * read. A sample is taken whenever metrics are asked for (at most every
 * {@link SAMPLE_EVERY_MS}), so the current minute holds what was measured so
 * far, and a minute nobody asked about has no data, as a gap in Azure's does.
 */
import type { ContainerGroupRuntime, ContainerUsageSample } from './runtime.js';

export const GRAIN_MS = 60_000;
/** Minutes kept per container. */
const KEEP_MINUTES = 60;
const SAMPLE_EVERY_MS = 2_000;

export type MetricName = 'CpuUsage' | 'MemoryUsage';

export interface Bucket {
  /** Start of the minute (epoch ms). */
  at: number;
  count: number;
  total: Record<MetricName, number>;
  minimum: Record<MetricName, number>;
  maximum: Record<MetricName, number>;
}

interface GroupHistory {
  sampledAt: number;
  containers: Map<string, Bucket[]>;
}

export class MetricsHistory {
  private readonly groups = new Map<string, GroupHistory>();

  constructor(private readonly runtime: ContainerGroupRuntime) {}

  /** Takes a sample of the group's containers now (unless one was just taken), then returns the buckets per container. */
  async read(groupKey: string, now = Date.now()): Promise<Map<string, Bucket[]>> {
    let h = this.groups.get(groupKey);
    if (!h) {
      h = { sampledAt: 0, containers: new Map() };
      this.groups.set(groupKey, h);
    }
    if (this.runtime.usage && now - h.sampledAt >= SAMPLE_EVERY_MS) {
      h.sampledAt = now;
      const usage = await this.runtime.usage(groupKey);
      for (const [name, u] of Object.entries(usage)) add(h.containers, name, u, now);
    }
    return h.containers;
  }

  forget(groupKey: string): void {
    this.groups.delete(groupKey);
  }
}

function add(containers: Map<string, Bucket[]>, name: string, u: ContainerUsageSample, now: number): void {
  const at = Math.floor(now / GRAIN_MS) * GRAIN_MS;
  let list = containers.get(name);
  if (!list) {
    list = [];
    containers.set(name, list);
  }
  let b = list[list.length - 1];
  if (!b || b.at !== at) {
    b = {
      at,
      count: 0,
      total: { CpuUsage: 0, MemoryUsage: 0 },
      minimum: { CpuUsage: Infinity, MemoryUsage: Infinity },
      maximum: { CpuUsage: -Infinity, MemoryUsage: -Infinity },
    };
    list.push(b);
    while (list.length > KEEP_MINUTES) list.shift();
  }
  const values: Record<MetricName, number> = { CpuUsage: u.cpuMillicores, MemoryUsage: u.memoryBytes };
  b.count += 1;
  for (const m of ['CpuUsage', 'MemoryUsage'] as const) {
    b.total[m] += values[m];
    b.minimum[m] = Math.min(b.minimum[m], values[m]);
    b.maximum[m] = Math.max(b.maximum[m], values[m]);
  }
}

const histories = new WeakMap<ContainerGroupRuntime, MetricsHistory>();

/** One history per runtime (per emulator). */
export function historyFor(runtime: ContainerGroupRuntime): MetricsHistory {
  let h = histories.get(runtime);
  if (!h) {
    h = new MetricsHistory(runtime);
    histories.set(runtime, h);
  }
  return h;
}
