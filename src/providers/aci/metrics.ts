/**
 * Container usage from Azure Monitor: the metrics Azure keeps for every
 * container group (Microsoft.ContainerInstance/containerGroups: CpuUsage in
 * millicores, MemoryUsage in bytes, split by containerName, one point a
 * minute). One Metrics_List read per group, through the provider's ArmCaller
 * (its read budget, Retry-After and backoff), and no more often than every
 * `refreshMs` per group: Azure's grain is a minute, so asking more often only
 * spends reads. Reads run through the ACI client's pipeline (same credential,
 * TLS and rate-limit headers); @azure/arm-monitor would add a second client
 * stack for one GET.
 */
import { createPipelineRequest } from '@azure/core-rest-pipeline';
import type { ContainerUsage } from '../../core/provider.js';
import type { AciArm } from './arm/arm-client.js';
import { isNotFound } from './arm/arm-caller.js';

export const METRICS_API_VERSION = '2018-01-01';
export const DEFAULT_METRICS_REFRESH_MS = 30_000;

/** The parts of Microsoft's Metrics_List response we read (metrics_API.json, 2018-01-01). */
interface MetricsResponse {
  value?: {
    name?: { value?: string };
    timeseries?: {
      metadatavalues?: { name?: { value?: string }; value?: string }[];
      data?: { timeStamp?: string; average?: number }[];
    }[];
  }[];
}

/** Per container: the latest minute with data of each metric. */
export interface GroupFigures {
  cpu: Map<string, { at: number; millicores: number }>;
  memory: Map<string, { at: number; bytes: number }>;
}

/** A REST failure shaped like the SDK's, so ArmCaller classifies it (429, 5xx, 404). */
class MetricsRestError extends Error {
  override readonly name = 'RestError';
  constructor(
    message: string,
    readonly statusCode: number,
    readonly code: string | undefined,
    readonly response: { headers: { get(name: string): string | undefined } },
  ) {
    super(message);
  }
}

/** Reads the latest point of each container's CpuUsage and MemoryUsage out of a response. */
export function parseGroupMetrics(body: MetricsResponse): GroupFigures {
  const out: GroupFigures = { cpu: new Map(), memory: new Map() };
  for (const metric of body.value ?? []) {
    const name = metric.name?.value?.toLowerCase();
    if (name !== 'cpuusage' && name !== 'memoryusage') continue;
    for (const ts of metric.timeseries ?? []) {
      const container = ts.metadatavalues?.find((m) => m.name?.value?.toLowerCase() === 'containername')?.value;
      if (!container) continue;
      let latest: { at: number; v: number } | undefined;
      for (const d of ts.data ?? []) {
        const at = Date.parse(d.timeStamp ?? '');
        if (d.average === undefined || Number.isNaN(at)) continue;
        if (!latest || at > latest.at) latest = { at, v: d.average };
      }
      if (!latest) continue;
      if (name === 'cpuusage') out.cpu.set(container, { at: latest.at, millicores: latest.v });
      else out.memory.set(container, { at: latest.at, bytes: latest.v });
    }
  }
  return out;
}

/** One group's figures as the core's ContainerUsage, for the containers that have any. */
export function containerUsage(
  f: GroupFigures,
  startTimes: ReadonlyMap<string, string>,
  readAt: number,
): ContainerUsage[] {
  const names = new Set([...f.cpu.keys(), ...f.memory.keys()]);
  return [...names].map((name) => {
    const cpu = f.cpu.get(name);
    const mem = f.memory.get(name);
    // A minute's point is stamped with its start; its average holds at the minute's end (not later than the read).
    const at = Math.min(readAt, Math.max(cpu?.at ?? 0, mem?.at ?? 0) + 60_000);
    const start = startTimes.get(name);
    return {
      name,
      time: new Date(at).toISOString(),
      ...(start ? { startTime: start } : {}),
      ...(cpu ? { usageNanoCores: Math.round(cpu.millicores * 1e6) } : {}),
      ...(mem ? { workingSetBytes: Math.round(mem.bytes), usageBytes: Math.round(mem.bytes) } : {}),
    };
  });
}

export interface GroupMetricsOptions {
  arm: AciArm;
  armEndpoint: string;
  subscriptionId: string;
  resourceGroup: string;
  refreshMs?: number;
}

export class GroupMetrics {
  private readonly cache = new Map<string, { at: number; figures: GroupFigures }>();
  private readonly inflight = new Map<string, Promise<GroupFigures>>();

  constructor(private readonly o: GroupMetricsOptions) {
    // The ACI client's CustomApiVersionPolicy rewrites every api-version to ACI's (2023-05-01);
    // Metrics_List needs Azure Monitor's. Policies added later run after it, so this one restores it.
    o.arm.client.pipeline.addPolicy({
      name: 'aciMetricsApiVersion',
      sendRequest: (request, next) => {
        const url = new URL(request.url);
        if (/\/providers\/Microsoft\.Insights\/metrics$/i.test(url.pathname)) {
          url.searchParams.set('api-version', METRICS_API_VERSION);
          request.url = url.toString();
        }
        return next(request);
      },
    });
  }

  private url(group: string): string {
    const { armEndpoint, subscriptionId, resourceGroup } = this.o;
    const id = `/subscriptions/${encodeURIComponent(subscriptionId)}/resourceGroups/${encodeURIComponent(resourceGroup)}/providers/Microsoft.ContainerInstance/containerGroups/${encodeURIComponent(group)}`;
    const q = new URLSearchParams({
      'api-version': METRICS_API_VERSION,
      metricnames: 'CpuUsage,MemoryUsage',
      $filter: "containerName eq '*'",
      interval: 'PT1M',
      aggregation: 'average',
      // The last few minutes: Azure's newest points can trail by a minute or two.
      timespan: `${new Date(Date.now() - 5 * 60_000).toISOString()}/${new Date().toISOString()}`,
    });
    return `${armEndpoint}${id}/providers/Microsoft.Insights/metrics?${q.toString()}`;
  }

  /** The group's figures, from the cache while fresh; one read in flight per group. */
  async figures(group: string): Promise<GroupFigures> {
    const hit = this.cache.get(group);
    if (hit && Date.now() - hit.at < (this.o.refreshMs ?? DEFAULT_METRICS_REFRESH_MS)) return hit.figures;
    let p = this.inflight.get(group);
    if (!p) {
      p = this.fetch(group).finally(() => this.inflight.delete(group));
      this.inflight.set(group, p);
    }
    return p;
  }

  /** Drops groups no longer running. */
  retain(groups: ReadonlySet<string>): void {
    for (const g of this.cache.keys()) if (!groups.has(g)) this.cache.delete(g);
  }

  private async fetch(group: string): Promise<GroupFigures> {
    try {
      const body = await this.o.arm.caller.call('metrics.list', 'read', async (abortSignal) => {
        const res = await this.o.arm.client.sendRequest(
          createPipelineRequest({ url: this.url(group), method: 'GET', abortSignal }),
        );
        if (res.status !== 200) {
          let code: string | undefined;
          let message = res.bodyAsText ?? '';
          try {
            const e = JSON.parse(res.bodyAsText ?? '{}') as {
              error?: { code?: string; message?: string };
              code?: string;
              message?: string;
            };
            code = e.error?.code ?? e.code;
            message = e.error?.message ?? e.message ?? message;
          } catch {
            // not JSON: keep the text
          }
          throw new MetricsRestError(message, res.status, code, { headers: res.headers });
        }
        return JSON.parse(res.bodyAsText ?? '{}') as MetricsResponse;
      });
      const figures = parseGroupMetrics(body);
      this.cache.set(group, { at: Date.now(), figures });
      return figures;
    } catch (e) {
      // The group went away between listing and reading: no figures, not an error.
      if (isNotFound(e)) return { cpu: new Map(), memory: new Map() };
      throw e;
    }
  }
}
