/**
 * The shaping of /stats/summary and /metrics/resource: stats/v1alpha1 field
 * names and omissions, sums from containers to pods to the node, the CPU
 * figure a backend lacks derived from successive readings, and the Prometheus
 * text the kubelet's resource collector writes (names, labels, timestamps),
 * parsed back as metrics-server reads it. The figures end to end, through the
 * real API server and metrics-server, are in test/e2e/metrics-top-hpa.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import type { PodUsage } from '../../src/core/provider.js';
import { goFloat, resourceMetricsText } from '../../src/kubelet-api/resource-metrics.js';
import { parseRoute } from '../../src/kubelet-api/routes.js';
import { buildSummary, summaryJson, UsageTracker, ZERO_TIME } from '../../src/kubelet-api/stats-summary.js';

const T0 = Date.parse('2026-01-01T10:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();

function pod(name: string, uid: string, containers: string[], started = true): V1Pod {
  return {
    metadata: { name, namespace: 'ns1', uid },
    spec: { containers: containers.map((c) => ({ name: c, image: 'busybox' })) },
    status: started
      ? {
          phase: 'Running',
          startTime: new Date(T0 - 60_000),
          containerStatuses: containers.map((c) => ({
            name: c,
            image: 'busybox',
            imageID: '',
            ready: true,
            restartCount: 0,
            state: { running: { startedAt: new Date(T0 - 50_000) } },
          })),
        }
      : { phase: 'Pending' },
  };
}

test('routes: GET /metrics/resource and /stats/summary', () => {
  assert.deepEqual(parseRoute('GET', '/metrics/resource'), { kind: 'metricsResource' });
  assert.deepEqual(parseRoute('GET', '/stats/summary?only_cpu_and_memory=true'), { kind: 'statsSummary' });
  assert.equal(parseRoute('POST', '/metrics/resource'), undefined);
  assert.equal(parseRoute('GET', '/metrics/cadvisor'), undefined);
});

test('tracker: a rate alone is integrated into a cumulative CPU time', () => {
  const t = new UsageTracker();
  const ref = { namespace: 'ns1', name: 'a', uid: 'u1' };
  // 250 millicores, started 10 s before the first reading: 2.5 core-seconds so far.
  let out = t.update([
    { ref, containers: [{ name: 'c', time: iso(T0), startTime: iso(T0 - 10_000), usageNanoCores: 250e6 }] },
  ]);
  assert.deepEqual(out.get('u1/c'), { usageNanoCores: 250e6, usageCoreNanoSeconds: 2.5e9 });
  // The same reading again (cached by the provider) adds nothing.
  out = t.update([{ ref, containers: [{ name: 'c', time: iso(T0), usageNanoCores: 250e6 }] }]);
  assert.deepEqual(out.get('u1/c'), { usageNanoCores: 250e6, usageCoreNanoSeconds: 2.5e9 });
  // A minute at 1 core: +60 core-seconds.
  out = t.update([{ ref, containers: [{ name: 'c', time: iso(T0 + 60_000), usageNanoCores: 1e9 }] }]);
  assert.deepEqual(out.get('u1/c'), { usageNanoCores: 1e9, usageCoreNanoSeconds: 62.5e9 });
  // A container that went away is forgotten: it starts over when it comes back.
  t.update([]);
  out = t.update([{ ref, containers: [{ name: 'c', time: iso(T0 + 120_000), usageNanoCores: 1e9 }] }]);
  assert.equal(out.get('u1/c')?.usageCoreNanoSeconds, 1e9); // no start time: at least a second's worth
});

test('tracker: a cumulative time alone gives the rate between readings; a counter reset starts over', () => {
  const t = new UsageTracker();
  const ref = { namespace: 'ns1', name: 'a', uid: 'u1' };
  let out = t.update([
    { ref, containers: [{ name: 'c', time: iso(T0), startTime: iso(T0 - 4_000), usageCoreNanoSeconds: 2e9 }] },
  ]);
  assert.deepEqual(out.get('u1/c'), { usageNanoCores: 500e6, usageCoreNanoSeconds: 2e9 });
  out = t.update([{ ref, containers: [{ name: 'c', time: iso(T0 + 10_000), usageCoreNanoSeconds: 12e9 }] }]);
  assert.deepEqual(out.get('u1/c'), { usageNanoCores: 1e9, usageCoreNanoSeconds: 12e9 });
  out = t.update([
    {
      ref,
      containers: [{ name: 'c', time: iso(T0 + 20_000), startTime: iso(T0 + 18_000), usageCoreNanoSeconds: 1e8 }],
    },
  ]);
  assert.deepEqual(out.get('u1/c'), { usageNanoCores: 50e6, usageCoreNanoSeconds: 1e8 });
  // A reading without any CPU figure gives none.
  out = t.update([{ ref, containers: [{ name: 'd', time: iso(T0), workingSetBytes: 5 }] }]);
  assert.equal(out.get('u1/d'), undefined);
});

function sampleSummary() {
  const usage: PodUsage[] = [
    {
      ref: { namespace: 'ns1', name: 'web', uid: 'u1' },
      containers: [
        {
          name: 'app',
          time: iso(T0 + 1_500),
          usageNanoCores: 200e6,
          usageCoreNanoSeconds: 3e9,
          workingSetBytes: 10_000_000,
          usageBytes: 12_000_000,
        },
        {
          name: 'side',
          time: iso(T0 + 1_000),
          usageNanoCores: 50e6,
          usageCoreNanoSeconds: 1e9,
          workingSetBytes: 2_000_000,
        },
      ],
    },
  ];
  const tracker = new UsageTracker();
  const cpu = tracker.update(usage);
  return buildSummary({
    nodeName: 'vk-1',
    nodeStartTime: new Date(T0 - 3_600_500),
    pods: [pod('web', 'u1', ['app', 'side']), pod('idle', 'u2', ['only']), pod('pending', 'u3', ['x'], false)],
    usage,
    cpu,
  });
}

test('summary: stats/v1alpha1 shape, containers always present, sums per pod and node', () => {
  const s = sampleSummary();
  const wire = JSON.parse(summaryJson(s)) as Record<string, unknown>;
  assert.deepEqual(wire, {
    node: {
      nodeName: 'vk-1',
      startTime: '2026-01-01T08:59:59Z',
      cpu: { time: '2026-01-01T10:00:01Z', usageNanoCores: 250e6, usageCoreNanoSeconds: 4e9 },
      memory: { time: '2026-01-01T10:00:01Z', usageBytes: 14_000_000, workingSetBytes: 12_000_000 },
    },
    pods: [
      {
        podRef: { name: 'web', namespace: 'ns1', uid: 'u1' },
        startTime: '2026-01-01T09:59:00Z',
        containers: [
          {
            name: 'app',
            startTime: '2026-01-01T09:59:10Z',
            cpu: { time: '2026-01-01T10:00:01Z', usageNanoCores: 200e6, usageCoreNanoSeconds: 3e9 },
            memory: { time: '2026-01-01T10:00:01Z', usageBytes: 12_000_000, workingSetBytes: 10_000_000 },
          },
          {
            name: 'side',
            startTime: '2026-01-01T09:59:10Z',
            cpu: { time: '2026-01-01T10:00:01Z', usageNanoCores: 50e6, usageCoreNanoSeconds: 1e9 },
            // usageBytes unknown: the working set is all the backend can tell.
            memory: { time: '2026-01-01T10:00:01Z', usageBytes: 2_000_000, workingSetBytes: 2_000_000 },
          },
        ],
        cpu: { time: '2026-01-01T10:00:01Z', usageNanoCores: 250e6, usageCoreNanoSeconds: 4e9 },
        memory: { time: '2026-01-01T10:00:01Z', usageBytes: 14_000_000, workingSetBytes: 12_000_000 },
      },
      // Running but no figures (yet): listed with its containers and start times only.
      {
        podRef: { name: 'idle', namespace: 'ns1', uid: 'u2' },
        startTime: '2026-01-01T09:59:00Z',
        containers: [{ name: 'only', startTime: '2026-01-01T09:59:10Z' }],
      },
    ],
  });
});

test('summary: no pods gives a node without figures; unknown start times are Go zero times', () => {
  const s = buildSummary({ nodeName: 'vk-1', nodeStartTime: new Date(T0), pods: [], usage: [], cpu: new Map() });
  assert.deepEqual(JSON.parse(summaryJson(s)), {
    node: { nodeName: 'vk-1', startTime: '2026-01-01T10:00:00Z' },
    pods: [],
  });
  const p = pod('a', 'u1', ['c']);
  p.status!.containerStatuses = [];
  const s2 = buildSummary({ nodeName: 'vk-1', nodeStartTime: new Date(T0), pods: [p], usage: [], cpu: new Map() });
  assert.equal(s2.pods[0]?.containers[0]?.startTime, ZERO_TIME);
});

test('goFloat writes numbers as Go strconv g/-1 (client_golang)', () => {
  assert.equal(goFloat(0), '0');
  assert.equal(goFloat(3), '3');
  assert.equal(goFloat(0.25), '0.25');
  assert.equal(goFloat(0.0001), '0.0001');
  assert.equal(goFloat(0.00001), '1e-05');
  assert.equal(goFloat(123456), '123456');
  assert.equal(goFloat(1234567), '1.234567e+06');
  assert.equal(goFloat(12_000_000), '1.2e+07');
  assert.equal(goFloat(1767261600.5), '1.7672616005e+09');
});

test('metrics/resource: the kubelet collector text, parsed back as metrics-server does', () => {
  const text = resourceMetricsText(sampleSummary());
  const ts = Date.parse('2026-01-01T10:00:01.500Z');
  const expected = [
    '# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds',
    '# TYPE container_cpu_usage_seconds_total counter',
    `container_cpu_usage_seconds_total{container="app",pod="web",namespace="ns1"} 3 ${ts}`,
    `container_cpu_usage_seconds_total{container="side",pod="web",namespace="ns1"} 1 ${ts - 500}`,
    '# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes',
    '# TYPE container_memory_working_set_bytes gauge',
    `container_memory_working_set_bytes{container="app",pod="web",namespace="ns1"} 1e+07 ${ts}`,
    `container_memory_working_set_bytes{container="side",pod="web",namespace="ns1"} 2e+06 ${ts - 500}`,
    '# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds',
    '# TYPE container_start_time_seconds gauge',
    'container_start_time_seconds{container="app",pod="web",namespace="ns1"} 1.76726155e+09',
    'container_start_time_seconds{container="side",pod="web",namespace="ns1"} 1.76726155e+09',
    'container_start_time_seconds{container="only",pod="idle",namespace="ns1"} 1.76726155e+09',
    '# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds',
    '# TYPE node_cpu_usage_seconds_total counter',
    `node_cpu_usage_seconds_total 4 ${ts}`,
    '# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes',
    '# TYPE node_memory_working_set_bytes gauge',
    `node_memory_working_set_bytes 1.2e+07 ${ts}`,
    '# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds',
    '# TYPE pod_cpu_usage_seconds_total counter',
    `pod_cpu_usage_seconds_total{namespace="ns1",pod="web"} 4 ${ts}`,
    '# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes',
    '# TYPE pod_memory_working_set_bytes gauge',
    `pod_memory_working_set_bytes{namespace="ns1",pod="web"} 1.2e+07 ${ts}`,
    '# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise',
    '# TYPE resource_scrape_error gauge',
    'resource_scrape_error 0',
    '# HELP scrape_error [ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise',
    '# TYPE scrape_error gauge',
    'scrape_error 0',
    '',
  ].join('\n');
  assert.equal(text, expected);
});

test('metrics/resource: a failed reading is scrape_error 1 and nothing else', () => {
  assert.equal(
    resourceMetricsText(undefined),
    [
      '# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise',
      '# TYPE resource_scrape_error gauge',
      'resource_scrape_error 1',
      '# HELP scrape_error [ALPHA] (Deprecated since 1.29.0) 1 if there was an error while getting container metrics, 0 otherwise',
      '# TYPE scrape_error gauge',
      'scrape_error 1',
      '',
    ].join('\n'),
  );
});

test('metrics/resource: label values are escaped', () => {
  const s = buildSummary({
    nodeName: 'n',
    nodeStartTime: new Date(T0),
    pods: [pod('p', 'u', ['c'])],
    usage: [
      {
        ref: { namespace: 'ns1', name: 'p', uid: 'u' },
        containers: [{ name: 'c', time: iso(T0), usageNanoCores: 1, usageCoreNanoSeconds: 1, workingSetBytes: 1 }],
      },
    ],
    cpu: new Map([['u/c', { usageNanoCores: 1, usageCoreNanoSeconds: 1e9 }]]),
  });
  s.pods[0]!.podRef.name = 'we"ird\\na\nme';
  assert.match(resourceMetricsText(s), /pod="we\\"ird\\\\na\\nme"/);
});
