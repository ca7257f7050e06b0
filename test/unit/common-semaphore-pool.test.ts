import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Semaphore } from '../../src/common/semaphore.js';
import { mapPool } from '../../src/common/pool.js';

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

test('semaphore: at most N holders, the next in FIFO order, a double release counts once', async () => {
  const s = new Semaphore(2);
  const a = await s.acquire();
  const b = await s.acquire();
  const order: string[] = [];
  void s.acquire().then((r) => {
    order.push('c');
    r();
  });
  void s.acquire().then(() => order.push('d'));
  await settle();
  assert.deepEqual(order, [], 'both slots held');
  a();
  a(); // a second release of the same slot must not free another
  await settle();
  assert.deepEqual(order, ['c', 'd'], "c got a's slot, released it, and d got it");
  b();
  const e = await s.acquire(); // b's slot is free again
  e();
});

test('mapPool: keeps order, settles each item, never more than the limit in flight', async () => {
  let inFlight = 0;
  let peak = 0;
  const out = await mapPool([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    await settle();
    inFlight--;
    if (n === 4) throw new Error('four');
    return n * 10;
  });
  assert.equal(peak, 3);
  assert.deepEqual(
    out.map((r) => (r.status === 'fulfilled' ? r.value : (r.reason as Error).message)),
    [10, 20, 30, 'four', 50, 60, 70],
  );
  assert.deepEqual(await mapPool([], 4, async () => 1), []);
});
