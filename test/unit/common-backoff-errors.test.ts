import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay, sleep } from '../../src/common/backoff.js';
import { errorMessage } from '../../src/common/errors.js';

test('backoff doubles from the base up to the ceiling, jitter within its fraction', () => {
  const p = { baseMs: 100, maxMs: 1000, jitter: 0 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 6].map((f) => backoffDelay(p, f)),
    [100, 200, 400, 800, 1000, 1000],
  );
  const j = { baseMs: 1000, maxMs: 1000, jitter: 0.25 };
  assert.equal(
    backoffDelay(j, 1, () => 0),
    750,
  );
  assert.equal(
    backoffDelay(j, 1, () => 0.5),
    1000,
  );
  assert.equal(
    backoffDelay(j, 1000, () => 0.5),
    1000,
    'a huge failure count stays finite',
  );
});

test('sleep resolves after its time, or at once when aborted', async () => {
  const t0 = Date.now();
  await sleep(20);
  assert.ok(Date.now() - t0 >= 15);
  const ac = new AbortController();
  const slept = sleep(60_000, ac.signal);
  ac.abort();
  await slept; // would hang the test for a minute if abort were ignored
  const pre = new AbortController();
  pre.abort();
  await sleep(60_000, pre.signal);
});

test('errorMessage reads an Error, a string, or anything else', () => {
  assert.equal(errorMessage(new TypeError('bad type')), 'bad type');
  assert.equal(errorMessage('plain'), 'plain');
  assert.equal(errorMessage(42), '42');
  assert.equal(errorMessage(undefined), 'undefined');
  assert.equal(errorMessage({ toString: () => 'custom' }), 'custom');
});
