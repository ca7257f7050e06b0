import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { silentLogger } from '../../src/common/logger.js';
import { EventRecorder } from '../../src/core/events.js';
import type { CoreApi } from '../../src/core/kube/apis.js';

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
  return { api: api as unknown as CoreApi, created, patched };
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
  r.record(pod, 'Warning', 'Throttled', 'same message');
  await r.flush();
  for (let i = 0; i < 2; i++) {
    r.record(pod, 'Warning', 'Throttled', 'same message');
    await r.flush();
  }
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

test('repeats of an Event still waiting in the queue are one write with their count', async () => {
  const f = fakeCore();
  const r = new EventRecorder(f.api, 'node-a', silentLogger(), 1);
  r.record({ ...pod, uid: 'other' }, 'Normal', 'Created', 'first, in flight at once');
  for (let i = 0; i < 5; i++) r.record(pod, 'Warning', 'BackOff', 'same message');
  await r.flush();
  assert.equal(f.created.length, 2);
  assert.equal(f.created[1]?.count, 5);
  assert.equal(f.patched.length, 0);
});

test('events wait while pod work is pending, at most maxDeferMs', async () => {
  const f = fakeCore();
  let busy = true;
  const r = new EventRecorder(f.api, 'node-a', silentLogger(), 4, { busy: () => busy, maxDeferMs: 60_000 });
  r.record(pod, 'Normal', 'Created', 'created');
  await new Promise((res) => setTimeout(res, 200));
  assert.equal(f.created.length, 0, 'sent while pod work was pending');
  busy = false;
  for (let i = 0; i < 100 && f.created.length === 0; i++) await new Promise((res) => setTimeout(res, 20));
  assert.equal(f.created.length, 1);

  // Never longer than maxDeferMs, even if pod work never ends.
  const g = fakeCore();
  const r2 = new EventRecorder(g.api, 'node-a', silentLogger(), 4, { busy: () => true, maxDeferMs: 100 });
  r2.record(pod, 'Normal', 'Created', 'created');
  for (let i = 0; i < 200 && g.created.length === 0; i++) await new Promise((res) => setTimeout(res, 20));
  assert.equal(g.created.length, 1);
  r.close();
  r2.close();
});

test('from the 10th distinct message of one reason, similar Events are combined into one', async () => {
  const f = fakeCore();
  const r = new EventRecorder(f.api, 'node-a', silentLogger(), 1);
  for (let i = 0; i < 14; i++) {
    r.record(pod, 'Warning', 'Unhealthy', `probe failed: attempt ${i}`);
    await r.flush();
  }
  // Nine Events of their own, then one combined Event whose count grows.
  assert.equal(f.created.length, 10);
  assert.equal(f.created[9]?.message, '(combined from similar events): probe failed: attempt 9');
  assert.equal(f.patched.length, 4);
  assert.equal(f.patched.at(-1)?.body.count, 5);
  assert.equal(
    (f.patched.at(-1)?.body as { message?: string }).message,
    '(combined from similar events): probe failed: attempt 13',
  );
});

test('one pod cannot flood the API server: 25 Events, then one per five minutes', async () => {
  const f = fakeCore();
  let now = 1_000_000;
  const r = new EventRecorder(f.api, 'node-a', silentLogger(), 4, { now: () => now });
  for (let i = 0; i < 30; i++) r.record(pod, 'Normal', `Reason${i}`, 'm');
  await r.flush();
  assert.equal(f.created.length, 25);
  assert.equal(r.dropped, 5);
  r.record({ ...pod, uid: 'u2' }, 'Normal', 'Other', 'another pod is not held back');
  now += 5 * 60_000;
  r.record(pod, 'Normal', 'Later', 'one more after five minutes');
  r.record(pod, 'Normal', 'Later2', 'but not two');
  await r.flush();
  assert.deepEqual(
    f.created.slice(25).map((e) => e.reason),
    ['Other', 'Later'],
  );
});

test('Events recorded in the same millisecond get distinct names', async () => {
  const f = fakeCore();
  const r = new EventRecorder(f.api, 'node-a', silentLogger(), 100, { now: () => 1_700_000_000_000 });
  // 40 pods named p (one per namespace), 20 events each, all in one millisecond: 800 names that a
  // millisecond and a 12-bit random suffix would not keep apart.
  for (let n = 0; n < 40; n++)
    for (let i = 0; i < 20; i++) r.record({ namespace: `ns-${n}`, name: 'p', uid: `u-${n}` }, 'Normal', `R${i}`, 'm');
  await r.flush();
  const names = f.created.map((e) => e.metadata?.name ?? '');
  assert.equal(names.length, 800);
  assert.equal(new Set(names).size, 800);
  for (const n of names) assert.match(n, /^p\.[0-9a-f]+$/);
});
