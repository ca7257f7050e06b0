import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cdfPoints, countOverTime, percentile, summarize } from '../../bench/lib/stats.js';
import { parseStat } from '../../bench/lib/proc.js';

test('percentile is nearest-rank: p50 of 1..10 is 5, p90 is 9, p99 and p100 are 10', () => {
  const xs = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
  assert.equal(percentile(xs, 50), 5);
  assert.equal(percentile(xs, 90), 9);
  assert.equal(percentile(xs, 99), 10);
  assert.equal(percentile(xs, 100), 10);
  assert.equal(percentile(xs, 0), 1);
  assert.ok(Number.isNaN(percentile([], 50)));
});

test('percentile of 1,000 samples: p99 is the 990th value, not the maximum', () => {
  const xs = Array.from({ length: 1000 }, (_, i) => i + 1);
  assert.equal(percentile(xs, 99), 990);
  assert.equal(percentile(xs, 50), 500);
});

test('summarize sorts its input and reports count and max', () => {
  const s = summarize([30, 10, 20]);
  assert.deepEqual(s, { count: 3, p50: 20, p90: 30, p99: 30, max: 30 });
  assert.equal(summarize([]).count, 0);
});

test('cdfPoints ends at (max, 1), rises monotonically and is thinned', () => {
  const xs = Array.from({ length: 1000 }, (_, i) => 1000 - i);
  const pts = cdfPoints(xs, 100);
  assert.ok(pts.length <= 101);
  assert.deepEqual(pts[pts.length - 1], [1000, 1]);
  for (let i = 1; i < pts.length; i++) {
    assert.ok((pts[i]?.[0] ?? 0) >= (pts[i - 1]?.[0] ?? 0));
    assert.ok((pts[i]?.[1] ?? 0) > (pts[i - 1]?.[1] ?? 0));
  }
  assert.deepEqual(cdfPoints([]), []);
});

test('countOverTime starts at (0,0) and ends at the last moment with every pod', () => {
  assert.deepEqual(countOverTime([300, 100, 200]), [
    [0, 0],
    [100, 1],
    [200, 2],
    [300, 3],
  ]);
  assert.deepEqual(countOverTime([]), [[0, 0]]);
});

test('parseStat reads CPU ticks and RSS pages after a command name with spaces and parentheses', () => {
  // Fields after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime … rss is field 24.
  const fields = [
    'S',
    '42',
    '1',
    '1',
    '0',
    '-1',
    '0',
    '0',
    '0',
    '0',
    '0',
    '150',
    '50',
    '20',
    '30',
    '20',
    '0',
    '1',
    '0',
    '100',
    '999',
    '2500',
  ];
  const s = parseStat(`1234 (node (bench) x) ${fields.join(' ')} 0 0`);
  assert.ok(s);
  assert.equal(s.pid, 1234);
  assert.equal(s.ppid, 42);
  assert.equal(s.cpuSeconds, 2.5);
  assert.equal(s.rssBytes, 2500 * 4096);
  assert.equal(parseStat('garbage'), undefined);
});
