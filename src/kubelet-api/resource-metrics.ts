/**
 * `/metrics/resource`: the Prometheus text metrics-server scrapes, written the
 * way the kubelet's resource metrics collector writes it
 * (pkg/kubelet/metrics/collectors/resource_metrics.go, v1.36) from the same
 * summary as /stats/summary: the same series names, HELP texts with their
 * stability level, label names and order, and each sample's own measurement
 * time as its timestamp (metrics-server uses it to compute rates).
 *
 * Hand-written rather than with prom-client: prom-client's registry keeps one
 * value per series for the process and cannot attach a per-sample timestamp,
 * and these series are a view of one scrape, not process state.
 */
import type { ContainerStats, PodStats, Summary } from './stats-summary.js';
import { ZERO_TIME } from './stats-summary.js';

type Kind = 'counter' | 'gauge';

interface Family {
  name: string;
  help: string;
  kind: Kind;
  samples: string[];
}

/** Go's strconv.FormatFloat(f, 'g', -1, 64), as client_golang's text format writes values. */
export function goFloat(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  if (v === 0) return Object.is(v, -0) ? '-0' : '0';
  const [mantissa, expText] = v.toExponential().split('e') as [string, string];
  const exp = Number(expText);
  // Go's shortest form switches to an exponent outside [-4, 6); JS's String() only outside (-7, 21).
  if (exp < -4 || exp >= 6) return `${mantissa}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  return String(v);
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/**
 * Labels sorted by name, as client_golang writes them; `asGiven` keeps the caller's order instead.
 * The text format gives label order no meaning (metrics-server and Prometheus read labels by name),
 * but Virtual Kubelet's e2e suite reads the pod name by position (the second label of the pod and
 * container series), so container series keep the kubelet's declared order (container, pod, namespace).
 */
function labels(l: Record<string, string>, asGiven = false): string {
  const names = asGiven ? Object.keys(l) : Object.keys(l).sort();
  if (names.length === 0) return '';
  return `{${names.map((n) => `${n}="${escapeLabel(l[n]!)}"`).join(',')}}`;
}

function sample(name: string, l: Record<string, string>, value: number, time?: string, asGiven = false): string {
  const ts = time === undefined ? '' : ` ${Date.parse(time)}`;
  return `${name}${labels(l, asGiven)} ${goFloat(value)}${ts}`;
}

function family(name: string, stability: 'STABLE' | 'ALPHA', help: string, kind: Kind): Family {
  return { name, help: `[${stability}] ${help}`, kind, samples: [] };
}

/**
 * The text for one scrape. No summary (the provider's readings failed) gives
 * only the scrape-error series at 1, as the kubelet does when its summary fails.
 */
export function resourceMetricsText(summary: Summary | undefined): string {
  const nodeCpu = family(
    'node_cpu_usage_seconds_total',
    'STABLE',
    'Cumulative cpu time consumed by the node in core-seconds',
    'counter',
  );
  const nodeMem = family(
    'node_memory_working_set_bytes',
    'STABLE',
    'Current working set of the node in bytes',
    'gauge',
  );
  const start = family(
    'container_start_time_seconds',
    'STABLE',
    'Start time of the container since unix epoch in seconds',
    'gauge',
  );
  const cCpu = family(
    'container_cpu_usage_seconds_total',
    'STABLE',
    'Cumulative cpu time consumed by the container in core-seconds',
    'counter',
  );
  const cMem = family(
    'container_memory_working_set_bytes',
    'STABLE',
    'Current working set of the container in bytes',
    'gauge',
  );
  const pCpu = family(
    'pod_cpu_usage_seconds_total',
    'STABLE',
    'Cumulative cpu time consumed by the pod in core-seconds',
    'counter',
  );
  const pMem = family('pod_memory_working_set_bytes', 'STABLE', 'Current working set of the pod in bytes', 'gauge');
  // scrape_error is deprecated since 1.29 (a v1.36 kubelet hides it unless asked); kept for older scrapers.
  const scrapeErr = family(
    'scrape_error',
    'ALPHA',
    '(Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise',
    'gauge',
  );
  const resErr = family(
    'resource_scrape_error',
    'STABLE',
    '1 if there was an error while getting container metrics, 0 otherwise',
    'gauge',
  );

  if (summary) {
    const n = summary.node;
    if (n.cpu?.usageCoreNanoSeconds !== undefined)
      nodeCpu.samples.push(sample(nodeCpu.name, {}, n.cpu.usageCoreNanoSeconds / 1e9, n.cpu.time));
    if (n.memory?.workingSetBytes !== undefined)
      nodeMem.samples.push(sample(nodeMem.name, {}, n.memory.workingSetBytes, n.memory.time));
    for (const pod of summary.pods) {
      for (const c of pod.containers) containerSamples(pod, c, start, cCpu, cMem);
      const pl = { pod: pod.podRef.name, namespace: pod.podRef.namespace };
      if (pod.cpu?.usageCoreNanoSeconds !== undefined)
        pCpu.samples.push(sample(pCpu.name, pl, pod.cpu.usageCoreNanoSeconds / 1e9, pod.cpu.time));
      if (pod.memory?.workingSetBytes !== undefined)
        pMem.samples.push(sample(pMem.name, pl, pod.memory.workingSetBytes, pod.memory.time));
    }
  }
  const errorCount = summary ? 0 : 1;
  scrapeErr.samples.push(sample(scrapeErr.name, {}, errorCount));
  resErr.samples.push(sample(resErr.name, {}, errorCount));

  // client_golang writes families sorted by name; families without samples are left out.
  const families = [nodeCpu, nodeMem, start, cCpu, cMem, pCpu, pMem, scrapeErr, resErr]
    .filter((f) => f.samples.length > 0)
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return families
    .map((f) => `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.kind}\n${f.samples.join('\n')}\n`)
    .join('');
}

function containerSamples(pod: PodStats, c: ContainerStats, start: Family, cpu: Family, mem: Family): void {
  const l = { container: c.name, pod: pod.podRef.name, namespace: pod.podRef.namespace };
  // The start time carries no timestamp of its own (NewLazyConstMetric without one).
  if (c.startTime !== ZERO_TIME && Date.parse(c.startTime) > 0)
    start.samples.push(sample(start.name, l, Date.parse(c.startTime) / 1000, undefined, true));
  if (c.cpu?.usageCoreNanoSeconds !== undefined)
    cpu.samples.push(sample(cpu.name, l, c.cpu.usageCoreNanoSeconds / 1e9, c.cpu.time, true));
  if (c.memory?.workingSetBytes !== undefined)
    mem.samples.push(sample(mem.name, l, c.memory.workingSetBytes, c.memory.time, true));
}
