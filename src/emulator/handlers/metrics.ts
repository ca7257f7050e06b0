/**
 * Azure Monitor's Metrics_List (Microsoft.Insights, api-version 2018-01-01) for a
 * container group: `GET {groupId}/providers/Microsoft.Insights/metrics`, the
 * response shaped as Microsoft's spec (metrics_API.json: Response → Metric →
 * TimeSeriesElement → MetricValue) with ACI's metric names, units and its one
 * dimension, containerName. Supported: metricnames CpuUsage (millicores, unit
 * Count) and MemoryUsage (bytes); aggregation average, minimum, maximum, total,
 * count; interval PT1M; timespan; $filter `containerName eq '*'` or `eq 'NAME'`
 * (without a filter the containers are summed into one series).
 */
import type { ArmContext, ArmRequest, ArmResponse } from '../context.js';
import { badRequest } from '../errors.js';
import { GRAIN_MS, historyFor, type Bucket, type MetricName } from '../metrics-history.js';
import { requireGroup } from './container-groups.js';

export const METRICS_API_VERSION = '2018-01-01';
const NAMESPACE = 'Microsoft.ContainerInstance/containerGroups';

const METRICS: Record<MetricName, { localized: string; unit: string; description: string }> = {
  CpuUsage: { localized: 'CPU Usage', unit: 'Count', description: 'CPU usage on all cores in millicores.' },
  MemoryUsage: { localized: 'Memory Usage', unit: 'Bytes', description: 'Total memory usage in byte.' },
};
const VALID = 'CpuUsage,MemoryUsage';

type Aggregation = 'average' | 'minimum' | 'maximum' | 'total' | 'count';
const AGGREGATIONS: Aggregation[] = ['average', 'minimum', 'maximum', 'total', 'count'];

function metricNames(q: URLSearchParams): MetricName[] {
  const raw = q.get('metricnames') ?? 'CpuUsage';
  return raw.split(',').map((n) => {
    const hit = (Object.keys(METRICS) as MetricName[]).find((m) => m.toLowerCase() === n.trim().toLowerCase());
    if (!hit) {
      throw badRequest(
        'BadRequest',
        `Failed to find metric configuration for provider: Microsoft.ContainerInstance, resource Type: containerGroups, metric: ${n}, Valid metrics: ${VALID}`,
      );
    }
    return hit;
  });
}

function aggregations(q: URLSearchParams): Aggregation[] {
  const raw = q.get('aggregation') ?? 'average';
  return raw.split(',').map((a) => {
    const hit = AGGREGATIONS.find((x) => x === a.trim().toLowerCase());
    if (!hit)
      throw badRequest(
        'BadRequest',
        `Invalid aggregation '${a}'. Valid aggregations: Average, Minimum, Maximum, Total, Count`,
      );
    return hit;
  });
}

/** `containerName eq '*'` → all, split; `containerName eq 'x'` → x; absent → all, summed. */
function containerFilter(q: URLSearchParams): { split: boolean; only?: string } {
  const f = q.get('$filter');
  if (f === null || f.trim() === '') return { split: false };
  const m = /^\s*containerName\s+eq\s+'([^']*)'\s*$/i.exec(f);
  if (!m)
    throw badRequest(
      'BadRequest',
      `Invalid $filter '${f}': the dimension of containerGroups metrics is containerName (containerName eq '*' or containerName eq 'NAME')`,
    );
  return m[1] === '*' ? { split: true } : { split: true, only: m[1]! };
}

function timespan(q: URLSearchParams, now: number): [number, number] {
  const t = q.get('timespan');
  // Azure's default: the last hour.
  if (t === null || t === '') return [now - 3_600_000, now];
  const [a, b] = t.split('/');
  const start = Date.parse(a ?? '');
  const end = Date.parse(b ?? '');
  if (Number.isNaN(start) || Number.isNaN(end) || end < start)
    throw badRequest('BadRequest', `Invalid timespan '${t}': expected startDateTime_ISO/endDateTime_ISO`);
  return [start, end];
}

function value(b: Bucket, m: MetricName, a: Aggregation): number {
  switch (a) {
    case 'average':
      return b.total[m] / b.count;
    case 'minimum':
      return b.minimum[m];
    case 'maximum':
      return b.maximum[m];
    case 'total':
      return b.total[m];
    case 'count':
      return b.count;
  }
}

/** Every minute of the window, with the aggregations where there was data. */
function series(
  buckets: Bucket[][],
  m: MetricName,
  aggs: Aggregation[],
  start: number,
  end: number,
): Record<string, unknown>[] {
  const points: Record<string, unknown>[] = [];
  const first = Math.floor(start / GRAIN_MS) * GRAIN_MS;
  for (let at = first; at <= end && points.length < 1440; at += GRAIN_MS) {
    const point: Record<string, unknown> = { timeStamp: new Date(at).toISOString().replace('.000Z', 'Z') };
    const hits = buckets.map((list) => list.find((b) => b.at === at)).filter((b): b is Bucket => b !== undefined);
    if (hits.length > 0) for (const a of aggs) point[a] = hits.reduce((sum, b) => sum + value(b, m, a), 0);
    points.push(point);
  }
  return points;
}

export async function listMetrics(ctx: ArmContext, req: ArmRequest): Promise<ArmResponse> {
  const record = requireGroup(ctx, req);
  const names = metricNames(req.query);
  const aggs = aggregations(req.query);
  const interval = req.query.get('interval') ?? 'PT1M';
  if (interval.toUpperCase() !== 'PT1M')
    throw badRequest('BadRequest', `Invalid interval '${interval}': the emulator keeps the PT1M grain only`);
  const filter = containerFilter(req.query);
  const now = Date.now();
  const [start, end] = timespan(req.query, now);
  const containers = await historyFor(ctx.runtime).read(record.key, now);
  const selected = [...containers].filter(([name]) => filter.only === undefined || name === filter.only);
  const value = names.map((m) => ({
    id: `${record.id}/providers/Microsoft.Insights/metrics/${m}`,
    type: 'Microsoft.Insights/metrics',
    name: { value: m, localizedValue: METRICS[m].localized },
    displayDescription: METRICS[m].description,
    unit: METRICS[m].unit,
    timeseries: filter.split
      ? selected.map(([name, buckets]) => ({
          metadatavalues: [{ name: { value: 'containername', localizedValue: 'containername' }, value: name }],
          data: series([buckets], m, aggs, start, end),
        }))
      : [
          {
            metadatavalues: [],
            data: series(
              selected.map(([, b]) => b),
              m,
              aggs,
              start,
              end,
            ),
          },
        ],
    errorCode: 'Success',
  }));
  const iso = (ms: number) => new Date(ms).toISOString().replace('.000Z', 'Z');
  return {
    status: 200,
    body: {
      cost: 0,
      timespan: `${iso(start)}/${iso(end)}`,
      interval: 'PT1M',
      value,
      namespace: NAMESPACE,
      resourceregion: record.location,
    },
  };
}
