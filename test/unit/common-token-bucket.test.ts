import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket } from '../../src/common/token-bucket.js';
import { waitFor } from '../support/wait.js';

const until = (what: string, cond: () => boolean): Promise<true> =>
  waitFor(what, () => cond() || undefined, { timeoutMs: 10_000, intervalMs: 5 });
const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('token bucket allows a burst, then refills at perSecond, never above the burst', () => {
  let now = 0;
  const b = new TokenBucket({ perSecond: 10, burst: 5, now: () => now });
  for (let i = 0; i < 5; i++) assert.equal(b.tryTake(), true, `burst token ${i}`);
  assert.equal(b.tryTake(), false);
  now += 100; // 10 a second: one token per 100 ms
  assert.equal(b.tryTake(), true);
  assert.equal(b.tryTake(), false);
  now += 10_000;
  let n = 0;
  while (b.tryTake()) n++;
  assert.equal(n, 5);
});

test('token bucket: waiters beyond the burst stay queued until the clock refills', async () => {
  let now = 0;
  const b = new TokenBucket({ perSecond: 10, burst: 3, now: () => now });
  let granted = 0;
  for (let i = 0; i < 5; i++) void b.take().then(() => granted++);
  await settle();
  assert.equal(granted, 3);
  assert.equal(b.waiting, 2, 'the two beyond the burst wait');
  now = 100; // one more token
  await until('the fourth grant', () => granted === 4);
  assert.equal(b.waiting, 1, 'one token, one waiter served');
  now = 200;
  await until('the fifth grant', () => granted === 5);
  assert.equal(b.waiting, 0);
});

test('token bucket serves waiters in order', async () => {
  const b = new TokenBucket({ perSecond: 1000, burst: 1 });
  const order: number[] = [];
  await b.take();
  await Promise.all([1, 2, 3].map((i) => b.take().then(() => order.push(i))));
  assert.deepEqual(order, [1, 2, 3]);
});

test('token bucket: nothing leaves before blockUntil, and a block empties the bucket', async () => {
  let now = 1000;
  const b = new TokenBucket({ perSecond: 100, burst: 10, now: () => now });
  b.blockUntil(1200);
  assert.equal(b.available(), 0, 'throttled: our tokens are spent too');
  assert.equal(b.tryTake(), false);
  let done = false;
  void b.take().then(() => (done = true));
  now = 1100; // tokens refilled, but still blocked
  assert.ok(b.available() >= 1);
  assert.equal(b.tryTake(), false, 'blocked although tokens are there');
  assert.equal(b.waiting, 1);
  now = 1200;
  await until('the blocked waiter', () => done);
});

test('token bucket: sync lowers the tokens to what the server reports, never raises them', () => {
  const now = 0;
  const b = new TokenBucket({ perSecond: 1, burst: 10, now: () => now });
  b.sync(4);
  assert.equal(b.available(), 4);
  b.sync(9);
  assert.equal(b.available(), 4);
});

test('token bucket rejects nonsense settings', () => {
  assert.throws(() => new TokenBucket({ perSecond: 0, burst: 1 }), RangeError);
  assert.throws(() => new TokenBucket({ perSecond: 1, burst: 0 }), RangeError);
});
