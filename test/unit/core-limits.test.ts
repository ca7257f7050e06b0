import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelay } from '../../src/common/backoff.js';
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
  assert.equal(
    backoffDelay(p, 1, () => 0),
    800,
  );
  assert.equal(
    backoffDelay(p, 1, () => 0.999999),
    1200,
  );
});

test('API request metrics are labelled by resource and subresource', () => {
  assert.equal(resourceOfUrl('https://h:1/api/v1/namespaces/ns/pods/p/status?x=1'), 'pods/status');
  assert.equal(resourceOfUrl('https://h:1/api/v1/pods?fieldSelector=spec.nodeName%3Dn'), 'pods');
  assert.equal(resourceOfUrl('https://h:1/api/v1/nodes/n/status'), 'nodes/status');
  assert.equal(resourceOfUrl('https://h:1/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n'), 'leases');
  assert.equal(resourceOfUrl('https://h:1/api/v1/namespaces/kube-system'), 'namespaces');
});
