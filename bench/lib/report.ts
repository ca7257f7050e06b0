/** The benchmark's outputs: the terminal table, the plots. Pure functions of the results. */
import { cdfPoints, countOverTime } from './stats.js';
import { linePlot, type Series } from './svg.js';
import type { PhaseResult, SystemResult } from './run.js';

export const COLUMNS = [
  'system',
  'workload',
  'pods',
  'p50 ms',
  'p90 ms',
  'p99 ms',
  'pods/s',
  'all Running s',
  'vs ceiling',
  'delete s',
  'provider empty s',
  'CPU s',
  'peak RSS MB',
  'node Ready s',
  'API req/pod',
  'status/pod',
  'events/pod',
  '404+409',
  'ARM/pod',
] as const;

const f = (v: number | undefined, digits = 1): string =>
  v === undefined || !Number.isFinite(v) ? '—' : v.toFixed(digits);

export function tableRows(results: readonly SystemResult[]): string[][] {
  const ceiling = new Map<string, number>();
  for (const p of results.find((r) => r.id === 'ceiling')?.phases ?? []) ceiling.set(p.workload, ratioBasis(p));
  const rows: string[][] = [];
  for (const r of results) {
    if (r.phases.length === 0) {
      rows.push([
        r.id,
        r.error ? `failed: ${r.error.split('\n')[0]?.slice(0, 60)}` : '—',
        ...COLUMNS.slice(2).map(() => ''),
      ]);
      continue;
    }
    for (const p of r.phases) rows.push(phaseRow(r, p, ceiling.get(p.workload)));
  }
  return rows;
}

/**
 * What "vs ceiling" compares: time to all Running for burst and scheduled; for steady,
 * whose end is set by the creation schedule, the p99 startup latency.
 */
export function ratioBasis(p: PhaseResult): number {
  return p.workload === 'steady' ? p.startupMs.p99 : p.allRunningS;
}

function phaseRow(r: SystemResult, p: PhaseResult, ceilingS: number | undefined): string[] {
  const n = p.pods || 1;
  const cpu = p.cpuSeconds + (p.delete?.cpuSeconds ?? 0);
  return [
    r.id,
    p.workload,
    String(p.pods),
    f(p.startupMs.p50, 0),
    f(p.startupMs.p90, 0),
    f(p.startupMs.p99, 0),
    f(p.podsPerSecond),
    f(p.allRunningS, 2),
    ceilingS ? `${(ratioBasis(p) / ceilingS).toFixed(2)}×` : '—',
    f(p.delete?.goneFromApiS, 2),
    f(p.delete?.goneFromProviderS, 2),
    f(cpu, 2),
    r.usage ? f(r.usage.peakRssBytes / 1e6, 0) : '—',
    f(r.nodeReadyS, 2),
    f(p.api.total / n, 2),
    f(p.api.podStatusWrites / n, 2),
    f(p.api.events / n, 2),
    String(p.api.notFound + p.api.conflicts + (p.delete ? p.delete.api.notFound + p.delete.api.conflicts : 0)),
    f(p.armCallsPerPod, 2),
  ];
}

/** Fixed-width text table (the terminal) or a Markdown one (the README). */
export function formatTable(rows: readonly string[][], markdown = false): string {
  const header = [...COLUMNS];
  if (markdown) {
    return [
      `| ${header.join(' | ')} |`,
      `|${header.map(() => '---').join('|')}|`,
      ...rows.map((r) => `| ${r.join(' | ')} |`),
    ].join('\n');
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** One CDF and one Running-over-time plot per workload, a line per system. */
export function plots(results: readonly SystemResult[]): Array<{ file: string; svg: string }> {
  const workloads = [...new Set(results.flatMap((r) => r.phases.map((p) => p.workload)))];
  const out: Array<{ file: string; svg: string }> = [];
  for (const w of workloads) {
    const phases = results.flatMap((r) => r.phases.filter((p) => p.workload === w).map((p) => ({ r, p })));
    const cdf: Series[] = phases.map(({ r, p }) => ({
      name: r.id,
      points: cdfPoints(p.latenciesMs.map((ms) => ms / 1000)),
    }));
    const over: Series[] = phases.map(({ r, p }) => ({
      name: r.id,
      points: countOverTime(p.runningAtMs.map((ms) => ms / 1000)),
    }));
    const n = phases[0]?.p.pods ?? 0;
    out.push({
      file: `${w}-startup-cdf.svg`,
      svg: linePlot(cdf, {
        title: `${w}: pod startup latency CDF (${n} pods)`,
        xLabel: 'seconds (creation, or agent start for burst, until seen Running)',
        yLabel: 'fraction of pods',
        yMax: 1,
        step: true,
      }),
    });
    out.push({
      file: `${w}-running-over-time.svg`,
      svg: linePlot(over, {
        title: `${w}: pods Running over time (${n} pods)`,
        xLabel: 'seconds since the phase started',
        yLabel: 'pods Running',
        step: true,
      }),
    });
  }
  return out;
}
