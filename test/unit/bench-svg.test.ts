import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeXml, linePlot, niceAxis } from '../../bench/lib/svg.js';
import { formatTable, plots, tableRows } from '../../bench/lib/report.js';
import type { PhaseResult, SystemResult } from '../../bench/lib/run.js';

test('niceAxis rounds the maximum up to a whole number of 1-2-2.5-5 steps', () => {
  assert.deepEqual(niceAxis(9.3), { max: 10, step: 2 });
  assert.deepEqual(niceAxis(1), { max: 1, step: 0.2 });
  assert.deepEqual(niceAxis(1234), { max: 1250, step: 250 });
  assert.deepEqual(niceAxis(0), { max: 1, step: 0.2 });
});

test('linePlot is one svg element with a path and a legend entry per series, names escaped', () => {
  const svg = linePlot(
    [
      {
        name: 'ceiling',
        points: [
          [0, 0],
          [1, 0.5],
          [2, 1],
        ],
      },
      {
        name: 'a<b>&"c"',
        points: [
          [0, 0],
          [3, 1],
        ],
      },
    ],
    { title: 'T & t', xLabel: 'x', yLabel: 'y', yMax: 1, step: true },
  );
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>\n$/);
  assert.equal(svg.match(/<svg/g)?.length, 1);
  assert.equal(svg.match(/<path class="series"/g)?.length, 2);
  assert.ok(svg.includes('T &amp; t'));
  assert.ok(svg.includes('a&lt;b&gt;&amp;&quot;c&quot;'));
  assert.ok(!svg.includes('a<b>'));
  // Step lines: a horizontal segment before each rise (3 points: M + 2×(H,V)).
  const d = /data-name="ceiling" d="([^"]+)"/.exec(svg)?.[1] ?? '';
  assert.equal(d.split(' ').length, 5);
  // Every coordinate lies inside the canvas.
  for (const m of d.matchAll(/[ML]([\d.]+),([\d.]+)/g)) {
    assert.ok(Number(m[1]) >= 0 && Number(m[1]) <= 720);
    assert.ok(Number(m[2]) >= 0 && Number(m[2]) <= 420);
  }
  assert.equal(escapeXml("'"), '&apos;');
});

function phase(workload: PhaseResult['workload'], allRunningS: number): PhaseResult {
  return {
    workload,
    pods: 100,
    startupMs: { count: 100, p50: 500, p90: 900, p99: 990, max: 1000 },
    allRunningS,
    podsPerSecond: 100 / allRunningS,
    cpuSeconds: 1.5,
    api: { total: 250, byKey: {}, byVerbResource: {}, podStatusWrites: 100, events: 50, notFound: 1, conflicts: 2 },
    runningAtMs: [100, 200],
    latenciesMs: [100, 200],
  };
}

test('the table puts every ratio against the ceiling of the same run and workload', () => {
  const results: SystemResult[] = [
    {
      id: 'ceiling',
      label: 'c',
      nodeName: 'n',
      namespace: 'n',
      nodeReadyS: 0.1,
      usage: { cpuSeconds: 1, peakRssBytes: 50e6 },
      phases: [phase('burst', 2)],
      podWatchRestarts: 0,
    },
    {
      id: 'mock',
      label: 'm',
      nodeName: 'm',
      namespace: 'm',
      nodeReadyS: 1.4,
      usage: { cpuSeconds: 3, peakRssBytes: 200e6 },
      phases: [phase('burst', 5)],
      podWatchRestarts: 0,
    },
    { id: 'vk', label: 'v', nodeName: 'v', namespace: 'v', phases: [], podWatchRestarts: 0, error: 'exited early' },
  ];
  const rows = tableRows(results);
  assert.equal(rows.length, 3);
  assert.equal(rows[0]?.[8], '1.00×');
  assert.equal(rows[1]?.[8], '2.50×');
  assert.equal(rows[1]?.[12], '200');
  assert.equal(rows[1]?.[15], '1.00');
  assert.equal(rows[1]?.[17], '3');
  assert.match(rows[2]?.[1] ?? '', /^failed: exited early/);
  const md = formatTable(rows, true).split('\n');
  assert.equal(md.length, 5);
  assert.match(md[0] ?? '', /^\| system \| workload \|/);
  // steady: the ratio is of p99 latencies (both 990 ms here), not of the schedule-bound end time.
  const steady = tableRows([
    { ...results[0], phases: [phase('steady', 10)] } as SystemResult,
    {
      ...results[1],
      phases: [{ ...phase('steady', 10), startupMs: { count: 100, p50: 500, p90: 900, p99: 1980, max: 2000 } }],
    } as SystemResult,
  ]);
  assert.equal(steady[1]?.[8], '2.00×');
  const files = plots(results).map((p) => p.file);
  assert.deepEqual(files, ['burst-startup-cdf.svg', 'burst-running-over-time.svg']);
});
