import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue } from '../../src/core/work-queue.js';
import { waitFor } from '../support/wait.js';

const fast = { baseMs: 1, maxMs: 5, jitter: 0 };

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

test('duplicate keys added before processing fold into one run', async () => {
  const runs: string[] = [];
  const gate = deferred();
  const q = new WorkQueue<string>({
    concurrency: 1,
    backoff: fast,
    handler: async (k) => {
      runs.push(k);
      if (k === 'block') await gate.promise;
    },
  });
  q.add('block'); // occupies the only worker
  q.add('a');
  q.add('a');
  q.add('b');
  q.add('a');
  assert.equal(q.depth, 2);
  gate.resolve();
  await q.whenIdle();
  assert.deepEqual(runs, ['block', 'a', 'b']);
});

test('a key is never processed twice at once; adding it while running reruns it once after', async () => {
  let active = 0;
  let maxActive = 0;
  let runs = 0;
  const gate = deferred();
  const q = new WorkQueue<string>({
    concurrency: 4,
    backoff: fast,
    handler: async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      runs++;
      if (runs === 1) await gate.promise;
      active--;
    },
  });
  q.add('k');
  await new Promise((r) => setImmediate(r));
  q.add('k');
  q.add('k');
  q.add('k');
  gate.resolve();
  await q.whenIdle();
  await new Promise((r) => setImmediate(r));
  await q.whenIdle();
  assert.equal(maxActive, 1);
  assert.equal(runs, 2);
});

test('concurrency is bounded', async () => {
  let active = 0;
  let maxActive = 0;
  const q = new WorkQueue<number>({
    concurrency: 3,
    backoff: fast,
    handler: async () => {
      active++;
      maxActive = Math.max(maxActive, active);
      await new Promise((r) => setTimeout(r, 2));
      active--;
    },
  });
  for (let i = 0; i < 30; i++) q.add(i);
  await q.whenIdle();
  assert.equal(maxActive, 3);
});

test('a failing key is retried with backoff until it succeeds, then its failures reset', async () => {
  let calls = 0;
  const errors: number[] = [];
  const done = deferred();
  const q = new WorkQueue<string>({
    concurrency: 2,
    backoff: fast,
    handler: async () => {
      calls++;
      if (calls < 4) throw new Error(`fail ${calls}`);
      done.resolve();
    },
    onError: (_k, _e, failures) => errors.push(failures),
  });
  q.add('x');
  await done.promise;
  await q.whenIdle();
  assert.equal(calls, 4);
  assert.deepEqual(errors, [1, 2, 3]);
  assert.equal(q.failuresOf('x'), 0);
});

test('a retry hint on the error delays the retry at least that long', async () => {
  const delays: number[] = [];
  let calls = 0;
  const done = deferred();
  const q = new WorkQueue<string>({
    concurrency: 1,
    backoff: fast,
    handler: async () => {
      calls++;
      if (calls === 1) throw Object.assign(new Error('throttled'), { retryAfterMs: 40 });
      done.resolve();
    },
    onError: (_k, _e, _f, retryInMs) => delays.push(retryInMs),
  });
  q.add('x');
  await done.promise;
  assert.deepEqual(delays, [40]);
});

test('addAfter keeps the earliest pending time and stop() drops delayed keys', async () => {
  const runs: string[] = [];
  const q = new WorkQueue<string>({ concurrency: 1, backoff: fast, handler: async (k) => void runs.push(k) });
  q.addAfter('late', 60_000);
  q.addAfter('late', 1);
  await waitFor('the earlier time to come', () => runs.length > 0, { timeoutMs: 10_000, intervalMs: 5 });
  await q.whenIdle();
  assert.deepEqual(runs, ['late']);
  q.addAfter('never', 60_000);
  assert.equal(q.depth, 1);
  await q.stop();
  assert.equal(q.depth, 0);
});
