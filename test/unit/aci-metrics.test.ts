/**
 * Reading Azure Monitor's Metrics_List response into container usage (the
 * ACI provider), and podman's stats text (the emulator's podman runtime).
 * Against the emulator and real podman: test/emulator/aci-metrics, test/e2e/metrics-top-hpa.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerUsage, parseGroupMetrics } from '../../src/providers/aci/metrics.js';
import { parseGoDuration, parseMemUsage } from '../../src/emulator/runtimes/podman/stats.js';

const T = Date.parse('2026-01-01T10:00:00Z');

test('parseGroupMetrics: the newest minute with data per container; other metrics and series without a container ignored', () => {
  const f = parseGroupMetrics({
    value: [
      {
        name: { value: 'CpuUsage' },
        timeseries: [
          {
            metadatavalues: [{ name: { value: 'containername' }, value: 'app' }],
            data: [
              { timeStamp: '2026-01-01T09:58:00Z', average: 100 },
              { timeStamp: '2026-01-01T09:59:00Z', average: 250.5 },
              { timeStamp: '2026-01-01T10:00:00Z' },
            ],
          },
          { metadatavalues: [], data: [{ timeStamp: '2026-01-01T09:59:00Z', average: 999 }] },
        ],
      },
      {
        name: { value: 'MemoryUsage' },
        timeseries: [
          {
            metadatavalues: [{ name: { value: 'containerName' }, value: 'app' }],
            data: [{ timeStamp: '2026-01-01T09:59:00Z', average: 12e6 }],
          },
        ],
      },
      {
        name: { value: 'NetworkBytesReceivedPerSecond' },
        timeseries: [
          {
            metadatavalues: [{ name: { value: 'containername' }, value: 'app' }],
            data: [{ timeStamp: '2026-01-01T09:59:00Z', average: 5 }],
          },
        ],
      },
    ],
  });
  assert.deepEqual([...f.cpu], [['app', { at: T - 60_000, millicores: 250.5 }]]);
  assert.deepEqual([...f.memory], [['app', { at: T - 60_000, bytes: 12e6 }]]);
  // The 09:59 minute's average holds at its end (10:00), never later than the read.
  assert.deepEqual(containerUsage(f, new Map([['app', '2026-01-01T09:00:00.000Z']]), T + 30_000), [
    {
      name: 'app',
      time: '2026-01-01T10:00:00.000Z',
      startTime: '2026-01-01T09:00:00.000Z',
      usageNanoCores: 250_500_000,
      workingSetBytes: 12e6,
      usageBytes: 12e6,
    },
  ]);
  assert.equal(containerUsage(f, new Map(), T - 30_000)[0]?.time, '2026-01-01T09:59:30.000Z');
  assert.deepEqual(containerUsage(parseGroupMetrics({}), new Map(), T), []);
});

test('podman stats text: Go durations and go-units sizes', () => {
  assert.equal(parseGoDuration('0s'), 0);
  assert.equal(parseGoDuration('1.5s'), 1500);
  assert.equal(parseGoDuration('1m2.5s'), 62_500);
  assert.equal(parseGoDuration('1h0m1s'), 3_601_000);
  assert.equal(parseGoDuration('350ms'), 350);
  assert.equal(parseGoDuration('12µs'), 0.012);
  assert.equal(parseGoDuration('n/a'), undefined);
  assert.equal(parseMemUsage('12.3MB / 536.9MB'), 12_300_000);
  assert.equal(parseMemUsage('512kB / 1GB'), 512_000);
  assert.equal(parseMemUsage('1.5GiB / 2GiB'), 1.5 * 1024 ** 3);
  assert.equal(parseMemUsage('--'), undefined);
});
