import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { ContainerGroup } from '@azure/arm-containerinstance';
import type { AciArm } from '../../src/providers/aci/arm/arm-client.js';
import { StatusWatcher } from '../../src/providers/aci/status-watcher.js';
import { FailureStreak } from '../../src/common/failure-log.js';

interface Line {
  level: number;
  msg: string;
  err?: string;
  failures?: number;
}

function capture(): { log: pino.Logger; lines: Line[] } {
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Line);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

/** The watcher's timer does not hold the process open (unref); the test must, while it waits. */
async function holdingOpen<T>(fn: () => Promise<T>): Promise<T> {
  const keep = setInterval(() => undefined, 1_000);
  try {
    return await fn();
  } finally {
    clearInterval(keep);
  }
}

test('FailureStreak: the first failure at its level, repeats at debug, one line on recovery', async () => {
  const { log, lines } = capture();
  const s = new FailureStreak(log, 'the job');
  s.succeeded();
  s.failed(new Error('boom'), { group: 'g1' });
  s.failed(new Error('boom again'));
  s.failed('a string');
  s.succeeded();
  s.succeeded();
  await settle();
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg, l.err]),
    [
      [40, 'the job failed; retrying', 'boom'],
      [20, 'the job failed again', 'boom again'],
      [20, 'the job failed again', 'a string'],
      [30, 'the job works again', undefined],
    ],
  );
  assert.equal(s.count, 0);
});

test('status watcher: a failing list is logged once per streak, with the pass counter as the signal', async () => {
  const { log, lines } = capture();
  let failList = true;
  const arm = {
    listGroups: async (): Promise<ContainerGroup[]> => {
      if (failList) throw new Error('ARM listGroups failed (503)');
      return [];
    },
    getGroup: async (): Promise<ContainerGroup | undefined> => undefined,
  } as unknown as AciArm;
  const w = new StatusWatcher({
    arm,
    clusterId: 'c',
    nodeName: 'n',
    listIntervalMs: 0,
    statusReadsPerSecond: 10,
    passIntervalMs: 5,
    steadyRefreshMs: 1000,
    log,
  });
  await holdingOpen(async () => {
    w.start();
    for (let i = 0; i < 4; i++) await w.afterNextPass();
    assert.ok(w.passes >= 4, `passes: ${w.passes}`);
    const warns = lines.filter((l) => l.level === 40);
    assert.equal(warns.length, 1, JSON.stringify(lines));
    assert.equal(warns[0]?.msg, 'listing the container groups for status failed; retrying');
    assert.equal(warns[0]?.err, 'ARM listGroups failed (503)');
    failList = false;
    await w.afterNextPass();
    await settle();
    assert.equal(lines.filter((l) => l.msg === 'listing the container groups for status works again').length, 1);
    assert.equal(lines.filter((l) => l.level === 40).length, 1, 'no new warning after recovery');
  }).finally(() => w.close());
});

test('status watcher: failed status reads are logged once for the pass, with their count', async () => {
  const { log, lines } = capture();
  const arm = {
    listGroups: async (): Promise<ContainerGroup[]> => [],
    getGroup: async (name: string): Promise<ContainerGroup | undefined> => {
      throw new Error(`GET ${name} timed out`);
    },
  } as unknown as AciArm;
  const w = new StatusWatcher({
    arm,
    clusterId: 'c',
    nodeName: 'n',
    listIntervalMs: 60_000,
    statusReadsPerSecond: 100,
    passIntervalMs: 5,
    steadyRefreshMs: 1000,
    log,
  });
  await holdingOpen(async () => {
    w.track('g1', { namespace: 'ns', name: 'p1', uid: 'u1' });
    w.track('g2', { namespace: 'ns', name: 'p2', uid: 'u2' });
    w.start();
    await w.afterNextPass();
    await w.afterNextPass();
    await settle();
    const warns = lines.filter((l) => l.level === 40);
    assert.equal(warns.length, 1, JSON.stringify(lines));
    assert.equal(warns[0]?.msg, 'reading container groups for status failed; retrying');
    // Both groups fail their GET (the first pass also confirms them after its list, so up to twice each).
    const failedReads = (warns[0] as unknown as { failedReads: number }).failedReads;
    assert.ok(failedReads >= 2 && failedReads <= 4, `failedReads: ${failedReads}`);
    assert.equal(warns[0]?.err, 'GET g1 timed out');
  }).finally(() => w.close());
});
