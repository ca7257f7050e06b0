/** What the provider refuses, and what it fails at for a while. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { backendPods, boundPod, core, startConnector } from './connector-process.js';

test('a pod the provider rejects ends Failed naming the field, with an Event; other pods are unaffected', async (t) => {
  const ns = await freshNamespace(t, 'reject');
  const c = await startConnector(t);
  const api = core();
  await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'privileged', {
      spec: {
        containers: [
          { name: 'ok', image: 'nginx' },
          { name: 'root', image: 'nginx', securityContext: { privileged: true } },
        ],
      },
    }),
  });
  for (let i = 0; i < 3; i++) await api.createNamespacedPod({ namespace: ns, body: boundPod(c.nodeName, `fine-${i}`) });
  const failed = await waitFor('the rejected pod to fail', async () => {
    const p = await api.readNamespacedPod({ name: 'privileged', namespace: ns });
    return p.status?.phase === 'Failed' ? p : undefined;
  });
  assert.equal(failed.status?.reason, 'UnsupportedField');
  assert.match(failed.status?.message ?? '', /spec\.containers\[1\]\.securityContext\.privileged/);
  const ev = await waitFor('a Warning Event', async () => {
    const list = await api.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=privileged' });
    return list.items.find((e) => e.type === 'Warning' && e.reason === 'UnsupportedField');
  });
  assert.match(ev.message ?? '', /securityContext\.privileged/);
  await waitFor('the other pods Running', async () => {
    const list = await api.listNamespacedPod({ namespace: ns });
    return (
      list.items.filter((p) => p.metadata?.name?.startsWith('fine-') && p.status?.phase === 'Running').length === 3
    );
  });
  assert.deepEqual(
    backendPods(c, ns)
      .map((p) => p.ref.name)
      .sort(),
    ['fine-0', 'fine-1', 'fine-2'],
  );
});

test('transient provider errors keep the pod Pending with a condition and an Event, then it runs', async (t) => {
  const ns = await freshNamespace(t, 'transient');
  const c = await startConnector(t);
  const api = core();
  const created = await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'flaky', { annotations: { 'mock.aci-connector.io/transient-failures': '3' } }),
  });
  const ev = await waitFor('a Warning Event explaining the retry', async () => {
    const list = await api.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=flaky' });
    return list.items.find((e) => e.type === 'Warning' && e.reason === 'MockThrottled');
  });
  assert.match(ev.message ?? '', /retrying/);
  const running = await waitFor(
    'the pod to run after the retries',
    async () => {
      const p = await api.readNamespacedPod({ name: 'flaky', namespace: ns });
      return p.status?.phase === 'Running' ? p : undefined;
    },
    { timeoutMs: 60_000 },
  );
  assert.equal(running.status?.conditions?.find((x) => x.type === 'Ready')?.status, 'True');
  const calls = c.state().calls[created.metadata?.uid ?? ''];
  assert.equal(calls?.created, 1);
  assert.ok((calls?.createCalls ?? 0) >= 4, 'three failures, then a success');
});

test('while retrying, the pod shows Pending with a Ready condition naming the reason', async (t) => {
  const ns = await freshNamespace(t, 'transient2');
  const c = await startConnector(t);
  const api = core();
  await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'stuck', { annotations: { 'mock.aci-connector.io/transient-failures': '1000' } }),
  });
  const p = await waitFor('the retry reason in the status', async () => {
    const pod = await api.readNamespacedPod({ name: 'stuck', namespace: ns });
    const ready = pod.status?.conditions?.find((x) => x.type === 'Ready');
    return ready?.reason === 'MockThrottled' ? pod : undefined;
  });
  assert.equal(p.status?.phase, 'Pending');
  assert.match(p.status?.conditions?.find((x) => x.type === 'Ready')?.message ?? '', /throttling/);
  assert.equal(p.status?.containerStatuses?.[0]?.state?.waiting?.reason, 'MockThrottled');
});
