import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../../src/common/backoff.js';
import { TokenBucket } from '../../src/common/token-bucket.js';
import { resourceOfUrl } from '../../src/core/kube-client.js';

test('backoff doubles from the base and stops at the cap', () => {
  const p = { baseMs: 100, maxMs: 1000, jitter: 0 };
  assert.deepEqual(
    [1, 2, 3, 4, 5, 10, 100].map((n) => backoffDelay(p, n)),
    [100, 200, 400, 800, 1000, 1000, 1000],
  );
});

test('backoff jitter stays within its fraction', () => {
  const p = { baseMs: 1000, maxMs: 1000, jitter: 0.2 };
  assert.equal(backoffDelay(p, 1, () => 0), 800);
  assert.equal(backoffDelay(p, 1, () => 0.999999), 1200);
});

test('token bucket allows a burst, then refills at qps', () => {
  let now = 0;
  const b = new TokenBucket(10, 5, () => now);
  for (let i = 0; i < 5; i++) assert.equal(b.tryTake(), true, `burst token ${i}`);
  assert.equal(b.tryTake(), false);
  now += 100; // 10 qps: one token per 100 ms
  assert.equal(b.tryTake(), true);
  assert.equal(b.tryTake(), false);
  now += 10_000; // never more than the burst saved up
  let n = 0;
  while (b.tryTake()) n++;
  assert.equal(n, 5);
});

test('token bucket serves waiters in order once tokens refill', async () => {
  const b = new TokenBucket(1000, 1);
  const order: number[] = [];
  await b.take();
  await Promise.all([1, 2, 3].map((i) => b.take().then(() => order.push(i))));
  assert.deepEqual(order, [1, 2, 3]);
});

test('token bucket rejects nonsense settings', () => {
  assert.throws(() => new TokenBucket(0, 1), RangeError);
  assert.throws(() => new TokenBucket(1, 0), RangeError);
});

test('API request metrics are labelled by resource and subresource', () => {
  assert.equal(resourceOfUrl('https://h:1/api/v1/namespaces/ns/pods/p/status?x=1'), 'pods/status');
  assert.equal(resourceOfUrl('https://h:1/api/v1/pods?fieldSelector=spec.nodeName%3Dn'), 'pods');
  assert.equal(resourceOfUrl('https://h:1/api/v1/nodes/n/status'), 'nodes/status');
  assert.equal(resourceOfUrl('https://h:1/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n'), 'leases');
  assert.equal(resourceOfUrl('https://h:1/api/v1/namespaces/kube-system'), 'namespaces');
});
