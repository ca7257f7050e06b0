/**
 * The readings behind /stats/summary and /metrics/resource: the provider's
 * getPodStats, asked at most once per {@link READING_TTL_MS} however many
 * scrapers call (metrics-server, the HPA, a test), with one request in flight,
 * and passed through one {@link UsageTracker} so the derived CPU figures stay
 * continuous between scrapes.
 */
import type { V1Pod } from '@kubernetes/client-node';
import type { PodUsage, Provider } from '../core/provider.js';
import { buildSummary, UsageTracker, type CpuFigures, type Summary } from './stats-summary.js';

/** Shorter than metrics-server's default 15 s resolution, so each scrape sees a fresh reading. */
export const READING_TTL_MS = 5_000;

export interface StatsSourceOptions {
  provider: Provider;
  nodeName: string;
  nodeStartTime: Date;
  listPods: () => V1Pod[];
}

export class StatsSource {
  private readonly tracker = new UsageTracker();
  private last: { at: number; usage: PodUsage[]; cpu: Map<string, CpuFigures> } | undefined;
  private inflight: Promise<{ usage: PodUsage[]; cpu: Map<string, CpuFigures> }> | undefined;

  constructor(private readonly o: StatsSourceOptions) {}

  /** The summary now; throws what the provider threw (the caller maps it to an HTTP error). */
  async summary(): Promise<Summary> {
    const { usage, cpu } = await this.readings();
    return buildSummary({
      nodeName: this.o.nodeName,
      nodeStartTime: this.o.nodeStartTime,
      pods: this.o.listPods(),
      usage,
      cpu,
    });
  }

  private async readings(): Promise<{ usage: PodUsage[]; cpu: Map<string, CpuFigures> }> {
    const hook = this.o.provider.getPodStats?.bind(this.o.provider);
    if (!hook) return { usage: [], cpu: new Map() };
    if (this.last && Date.now() - this.last.at < READING_TTL_MS) return this.last;
    this.inflight ??= hook()
      .then((usage) => {
        const cpu = this.tracker.update(usage);
        this.last = { at: Date.now(), usage, cpu };
        return this.last;
      })
      .finally(() => {
        this.inflight = undefined;
      });
    return this.inflight;
  }
}
