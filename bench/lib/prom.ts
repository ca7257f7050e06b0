/**
 * Parses the API server's `apiserver_request_total` counter out of the Prometheus
 * text format and takes the delta between two scrapes. Hand-written because only
 * reading one counter is needed (prom-client writes metrics, it does not parse them).
 */

export interface RequestSample {
  verb: string;
  resource: string;
  subresource: string;
  code: string;
  value: number;
}

/** key: "VERB resource[/subresource] code" */
export type RequestCounts = Map<string, number>;

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const m of text.matchAll(re))
    labels[m[1] ?? ''] = (m[2] ?? '').replace(/\\(.)/g, (_s, c: string) => (c === 'n' ? '\n' : c));
  return labels;
}

export function parseRequestTotals(text: string, metric = 'apiserver_request_total'): RequestSample[] {
  const out: RequestSample[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const close = line.lastIndexOf('}');
    if (close < 0) continue;
    const labels = parseLabels(line.slice(metric.length + 1, close));
    const value = Number(
      line
        .slice(close + 1)
        .trim()
        .split(/\s+/)[0],
    );
    if (!Number.isFinite(value)) continue;
    out.push({
      verb: labels.verb ?? '',
      resource: labels.resource ?? '',
      subresource: labels.subresource ?? '',
      code: labels.code ?? '',
      value,
    });
  }
  return out;
}

export function sampleKey(s: Pick<RequestSample, 'verb' | 'resource' | 'subresource' | 'code'>): string {
  return `${s.verb} ${s.resource}${s.subresource ? `/${s.subresource}` : ''} ${s.code}`;
}

export function toCounts(samples: readonly RequestSample[]): RequestCounts {
  const m: RequestCounts = new Map();
  for (const s of samples) m.set(sampleKey(s), (m.get(sampleKey(s)) ?? 0) + s.value);
  return m;
}

/** after − before, keeping only keys that grew (a counter never shrinks unless the server restarted). */
export function delta(before: RequestCounts, after: RequestCounts): RequestCounts {
  const out: RequestCounts = new Map();
  for (const [k, v] of after) {
    const d = v - (before.get(k) ?? 0);
    if (d > 0) out.set(k, d);
  }
  return new Map([...out.entries()].sort((a, b) => b[1] - a[1]));
}

export interface RequestDigest {
  total: number;
  /** "VERB resource[/subresource] code" → count */
  byKey: Record<string, number>;
  /** "VERB resource[/subresource]" → count (codes summed) */
  byVerbResource: Record<string, number>;
  /** writes to pods/status (PATCH or PUT) */
  podStatusWrites: number;
  events: number;
  /** 404 and 409 answers to requests on pods (and subresources) and events: the agents' own resources */
  notFound: number;
  conflicts: number;
}

export function digest(d: RequestCounts): RequestDigest {
  const byKey: Record<string, number> = {};
  const byVerbResource: Record<string, number> = {};
  let total = 0;
  let podStatusWrites = 0;
  let events = 0;
  let notFound = 0;
  let conflicts = 0;
  for (const [k, v] of d) {
    byKey[k] = v;
    const [verb = '', res = '', code = ''] = k.split(' ');
    const vr = `${verb} ${res}`;
    byVerbResource[vr] = (byVerbResource[vr] ?? 0) + v;
    total += v;
    if (res === 'pods/status' && (verb === 'PATCH' || verb === 'PUT' || verb === 'APPLY')) podStatusWrites += v;
    if (res === 'events' && verb !== 'WATCH' && verb !== 'LIST' && verb !== 'GET') events += v;
    // Controllers' 409s on deployments or a namespace's finalize are not the agent's doing.
    const agents = res.startsWith('pods') || res === 'events';
    if (agents && code === '404') notFound += v;
    if (agents && code === '409') conflicts += v;
  }
  return { total, byKey, byVerbResource, podStatusWrites, events, notFound, conflicts };
}
