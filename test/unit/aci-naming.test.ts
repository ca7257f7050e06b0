import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  containerGroupName,
  groupTags,
  identityFromTags,
  MAX_GROUP_NAME,
  TAG,
} from '../../src/providers/aci/naming.js';
import { parseQuantity } from '../../src/common/quantity.js';

const aciName = /^[a-z0-9]+(-[a-z0-9]+)*$/;

test('group names are deterministic and follow ACI rules', () => {
  const id = { clusterId: 'c1', namespace: 'default', podName: 'web', podUid: 'u1' };
  const a = containerGroupName(id);
  assert.equal(a, containerGroupName({ ...id }));
  assert.match(a, aciName);
  assert.ok(a.startsWith('default-web-'));
  assert.ok(a.length <= MAX_GROUP_NAME);
});

test('names differ across namespaces, incarnations and clusters, even when the readable part collides', () => {
  const base = { clusterId: 'c1', namespace: 'a-b', podName: 'c', podUid: 'u1' };
  const names = new Set([
    containerGroupName(base),
    containerGroupName({ ...base, namespace: 'a', podName: 'b-c' }),
    containerGroupName({ ...base, podUid: 'u2' }),
    containerGroupName({ ...base, clusterId: 'c2' }),
  ]);
  assert.equal(names.size, 4);
});

test('long and odd names are shortened and cleaned, never ending in or doubling a hyphen', () => {
  for (const podName of ['x'.repeat(253), 'a.b.c--d', 'abc.'.repeat(40), '-lead', 'z'.repeat(51) + '-tail']) {
    const n = containerGroupName({ clusterId: 'c', namespace: 'kube-system', podName, podUid: 'u' });
    assert.ok(n.length <= MAX_GROUP_NAME, n);
    assert.match(n, aciName, n);
  }
});

test('tags carry the pod identity and round-trip; a group missing any tag is not ours', () => {
  const id = { clusterId: 'c', nodeName: 'aci-connector', namespace: 'ns', podName: 'p', podUid: 'u' };
  const tags = groupTags(id);
  assert.deepEqual(identityFromTags(tags), id);
  for (const k of Object.values(TAG)) {
    const partial = { ...tags };
    delete partial[k];
    assert.equal(identityFromTags(partial), undefined, k);
  }
  assert.equal(identityFromTags(undefined), undefined);
});

test('quantities parse like Kubernetes', () => {
  assert.equal(parseQuantity('500m'), 0.5);
  assert.equal(parseQuantity('2'), 2);
  assert.equal(parseQuantity('1.5Gi'), 1.5 * 2 ** 30);
  assert.equal(parseQuantity('128Mi'), 128 * 2 ** 20);
  assert.equal(parseQuantity('1G'), 1e9);
  assert.equal(parseQuantity('1e3'), 1000);
  assert.throws(() => parseQuantity('1.5 Gi'), RangeError);
  assert.throws(() => parseQuantity('abc'), RangeError);
});
