/** Pure figures over latency samples (milliseconds). */

/** Nearest-rank percentile (the definition SIG Scalability's SLO tooling uses); NaN when empty. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  if (p <= 0) return sorted[0] ?? NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? NaN;
}

export interface LatencySummary {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? (sorted[sorted.length - 1] ?? NaN) : NaN,
  };
}

/** Points of the empirical CDF, thinned to at most maxPoints (first and last kept). */
export function cdfPoints(samples: readonly number[], maxPoints = 200): Array<[number, number]> {
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return [];
  const step = Math.max(1, Math.ceil(n / maxPoints));
  const out: Array<[number, number]> = [];
  for (let i = 0; i < n; i += step) out.push([sorted[i] ?? 0, (i + 1) / n]);
  if (out[out.length - 1]?.[1] !== 1) out.push([sorted[n - 1] ?? 0, 1]);
  return out;
}

/** Running count over time from the moments (ms since t0) each pod was seen Running. */
export function countOverTime(moments: readonly number[], maxPoints = 200): Array<[number, number]> {
  const sorted = [...moments].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return [[0, 0]];
  const step = Math.max(1, Math.ceil(n / maxPoints));
  const out: Array<[number, number]> = [[0, 0]];
  for (let i = 0; i < n; i += step) out.push([sorted[i] ?? 0, i + 1]);
  if (out[out.length - 1]?.[1] !== n) out.push([sorted[n - 1] ?? 0, n]);
  return out;
}
