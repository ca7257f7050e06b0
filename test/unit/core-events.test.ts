import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { silentLogger } from '../../src/common/logger.js';
import { EventRecorder } from '../../src/core/events.js';

function fakeCore() {
  const created: k8s.CoreV1Event[] = [];
  const patched: Array<{ name: string; body: { count: number } }> = [];
  const api = {
    async createNamespacedEvent(req: { namespace: string; body: k8s.CoreV1Event }) {
      created.push(req.body);
      return req.body;
    },
    async patchNamespacedEvent(req: { name: string; namespace: string; body: { count: number } }) {
      patched.push({ name: req.name, body: req.body });
      return {};
    },
  };
  return { api: api as unknown as k8s.CoreV1Api, created, patched };
}

const pod = { namespace: 'ns', name: 'p', uid: 'u1' };

test('an Event names the pod, the node and the reporting component', async () => {
  const f = fakeCore();
  const r = new EventRecorder(f.api, 'node-a', silentLogger());
  r.record(pod, 'Warning', 'CreateContainerConfigError', 'secret "x" not found');
  await r.flush();
  assert.equal(f.created.length, 1);
  const e = f.created[0];
  assert.deepEqual(e?.involvedObject, { kind: 'Pod', apiVersion: 'v1', namespace: 'ns', name: 'p', uid: 'u1' });
  assert.equal(e?.type, 'Warning');
  assert.equal(e?.reason, 'CreateContainerConfigError');
  assert.equal(e?.source?.host, 'node-a');
  assert.equal(e?.reportingComponent, 'aci-connector');
  assert.equal(e?.count, 1);
});

test('a repeated Event bumps the count of the first instead of creating another', async () => {
  const f = fakeCore();
  const r = new EventRecorder(f.api, 'node-a', silentLogger(), 1);
  for (let i = 0; i < 3; i++) r.record(pod, 'Warning', 'Throttled', 'same message');
  r.record(pod, 'Warning', 'Throttled', 'another message');
  await r.flush();
  assert.equal(f.created.length, 2);
  assert.deepEqual(
    f.patched.map((p) => [p.name, p.body.count]),
    [
      [f.created[0]?.metadata?.name, 2],
      [f.created[0]?.metadata?.name, 3],
    ],
  );
});
