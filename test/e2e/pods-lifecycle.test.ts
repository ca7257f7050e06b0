/**
 * Pods on the node: full status of a bound pod, placement by the real
 * scheduler, graceful and force deletion, deletion during creation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import type { V1Pod } from '@kubernetes/client-node';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { backendPods, boundPod, core, placeOn, startConnector } from './connector-process.js';

async function podGone(ns: string, name: string): Promise<boolean> {
  try {
    await core().readNamespacedPod({ name, namespace: ns });
    return false;
  } catch (err) {
    return (err as { code?: number }).code === 404;
  }
}

test('a pod bound to the node runs, and its status is what a kubelet reports', async (t) => {
  const ns = await freshNamespace(t, 'status');
  const c = await startConnector(t);
  const api = core();
  const body = boundPod(c.nodeName, 'web', {
    spec: {
      containers: [
        { name: 'app', image: 'nginx:1.27' },
        { name: 'side', image: 'busybox:1.36' },
      ],
    },
  });
  const created = await api.createNamespacedPod({ namespace: ns, body });
  const pod = await waitFor('pod Running and Ready', async () => {
    const p = await api.readNamespacedPod({ name: 'web', namespace: ns });
    return p.status?.phase === 'Running' && p.status.conditions?.find((x) => x.type === 'Ready')?.status === 'True'
      ? p
      : undefined;
  });
  const st = pod.status ?? {};
  const backend = backendPods(c, ns);
  assert.equal(backend.length, 1);
  const b = backend[0];
  assert.equal(b?.ref.uid, created.metadata?.uid);

  assert.equal(st.phase, 'Running');
  assert.equal(st.hostIP, '127.0.0.1');
  assert.deepEqual(
    st.hostIPs?.map((h) => h.ip),
    ['127.0.0.1'],
  );
  assert.equal(st.podIP, b?.podIP);
  assert.deepEqual(
    st.podIPs?.map((p) => p.ip),
    [b?.podIP],
  );
  assert.ok(st.startTime instanceof Date || typeof st.startTime === 'string', 'startTime set');
  for (const type of ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready']) {
    assert.equal(st.conditions?.find((x) => x.type === type)?.status, 'True', `condition ${type}`);
  }
  assert.deepEqual(st.containerStatuses?.map((s) => s.name).sort(), ['app', 'side']);
  for (const cs of st.containerStatuses ?? []) {
    const spec = body.spec?.containers.find((x) => x.name === cs.name);
    assert.equal(cs.image, spec?.image, `${cs.name} image`);
    assert.ok(cs.imageID, `${cs.name} imageID`);
    assert.ok(cs.containerID?.startsWith('mock://'), `${cs.name} containerID`);
    assert.equal(cs.ready, true);
    assert.equal(cs.started, true);
    assert.equal(cs.restartCount, 0);
    assert.ok(cs.state?.running?.startedAt, `${cs.name} running`);
    assert.equal(cs.state?.waiting, undefined);
    assert.equal(cs.state?.terminated, undefined);
    assert.ok(
      !cs.lastState?.running && !cs.lastState?.waiting && !cs.lastState?.terminated,
      `${cs.name} has no lastState`,
    );
  }
  assert.equal(c.state().calls[created.metadata?.uid ?? '']?.created, 1);

  // Status is written only when it changes: one pod, at most two writes, and no more later.
  const writes = async () => {
    const text = await (await fetch(`http://127.0.0.1:${c.metricsPort()}/metrics`)).text();
    return Number(/^aci_connector_pod_status_writes_total (\d+)/m.exec(text)?.[1] ?? NaN);
  };
  const reconciles = async () => {
    const text = await (await fetch(`http://127.0.0.1:${c.metricsPort()}/metrics`)).text();
    return [...text.matchAll(/^aci_connector_pod_reconcile_seconds_count\{[^}]*\} (\d+)/gm)].reduce(
      (n, m) => n + Number(m[1]),
      0,
    );
  };
  const w1 = await writes();
  assert.ok(w1 >= 1 && w1 <= 2, `status writes for one pod: ${w1}`);
  // The positive signal: a change the controller must look at (a label) was reconciled, and
  // wrote no status, since the pod's status did not change.
  const r1 = await reconciles();
  const live = await core().readNamespacedPod({ name: 'web', namespace: ns });
  live.metadata = { ...live.metadata, labels: { ...live.metadata?.labels, touched: 'yes' } };
  await core().replaceNamespacedPod({ name: 'web', namespace: ns, body: live });
  await waitFor('the label change reconciled', async () => (await reconciles()) > r1);
  assert.equal(await writes(), w1, 'no further status writes without a change');
});

test('conditions others own are kept, and a readiness gate holds Ready until it is True', async (t) => {
  const ns = await freshNamespace(t, 'gates');
  const c = await startConnector(t);
  const api = core();
  const gate = 'example.com/load-balancer-ready';
  await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'gated', {
      spec: { readinessGates: [{ conditionType: gate }], containers: [{ name: 'c', image: 'nginx' }] },
    }),
  });
  const running = await waitFor('pod Running with Ready False for the gate', async () => {
    const p = await api.readNamespacedPod({ name: 'gated', namespace: ns });
    const ready = p.status?.conditions?.find((x) => x.type === 'Ready');
    return p.status?.phase === 'Running' && ready?.status === 'False' ? { p, ready } : undefined;
  });
  assert.equal(running.ready.reason, 'ReadinessGatesNotReady');
  assert.equal(running.p.status?.conditions?.find((x) => x.type === 'ContainersReady')?.status, 'True');
  // Another controller sets its condition through the status subresource.
  await api.patchNamespacedPodStatus(
    {
      name: 'gated',
      namespace: ns,
      body: { status: { conditions: [{ type: gate, status: 'True', lastTransitionTime: new Date() }] } },
    },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch),
  );
  const ready = await waitFor('Ready True once the gate is True', async () => {
    const p = await api.readNamespacedPod({ name: 'gated', namespace: ns });
    return p.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True' ? p : undefined;
  });
  assert.equal(
    ready.status?.conditions?.find((x) => x.type === gate)?.status,
    'True',
    "the other controller's condition is kept",
  );
});

test('the scheduler places a tolerating pod on the node, and not a pod without the toleration', async (t) => {
  const ns = await freshNamespace(t, 'sched');
  const c = await startConnector(t);
  const api = core();
  const { nodeSelector, tolerations } = placeOn(c.nodeName);
  const pod = (name: string, tol: boolean): V1Pod => ({
    metadata: { name },
    spec: { nodeSelector, tolerations: tol ? tolerations : undefined, containers: [{ name: 'c', image: 'nginx' }] },
  });
  await api.createNamespacedPod({ namespace: ns, body: pod('tolerates', true) });
  await api.createNamespacedPod({ namespace: ns, body: pod('intolerant', false) });
  const placed = await waitFor('tolerating pod Running', async () => {
    const p = await api.readNamespacedPod({ name: 'tolerates', namespace: ns });
    return p.status?.phase === 'Running' ? p : undefined;
  });
  assert.equal(placed.spec?.nodeName, c.nodeName);
  const refused = await waitFor('the scheduler to report the intolerant pod unschedulable', async () => {
    const p = await api.readNamespacedPod({ name: 'intolerant', namespace: ns });
    const cond = p.status?.conditions?.find((x) => x.type === 'PodScheduled');
    return cond?.status === 'False' ? { p, cond } : undefined;
  });
  assert.equal(refused.cond.reason, 'Unschedulable');
  assert.match(refused.cond.message ?? '', /untolerated taint/);
  assert.equal(refused.p.spec?.nodeName, undefined);
  assert.deepEqual(
    backendPods(c, ns).map((p) => p.ref.name),
    ['tolerates'],
  );
});

test('graceful and force deletion both leave nothing in the backend', async (t) => {
  const ns = await freshNamespace(t, 'delete');
  const c = await startConnector(t);
  const api = core();
  for (const name of ['graceful', 'forced']) {
    await api.createNamespacedPod({
      namespace: ns,
      body: boundPod(c.nodeName, name, {
        spec: { terminationGracePeriodSeconds: 5, containers: [{ name: 'c', image: 'nginx' }] },
      }),
    });
  }
  await waitFor('both Running', async () => {
    const list = await api.listNamespacedPod({ namespace: ns });
    return list.items.length === 2 && list.items.every((p) => p.status?.phase === 'Running');
  });
  assert.equal(backendPods(c, ns).length, 2);
  const graceful = await api.readNamespacedPod({ name: 'graceful', namespace: ns });
  await api.deleteNamespacedPod({ name: 'graceful', namespace: ns });
  await waitFor('graceful pod gone from the API', () => podGone(ns, 'graceful'));
  assert.deepEqual(
    backendPods(c, ns).map((p) => p.ref.name),
    ['forced'],
  );
  assert.equal(c.state().calls[graceful.metadata?.uid ?? '']?.deleted, 1);

  await api.deleteNamespacedPod({ name: 'forced', namespace: ns, gracePeriodSeconds: 0 });
  await waitFor('forced pod gone from the API', () => podGone(ns, 'forced'));
  await waitFor('forced pod gone from the backend', () => backendPods(c, ns).length === 0);
});

test('a pod deleted while it is being created does not stay in the backend', async (t) => {
  const ns = await freshNamespace(t, 'midcreate');
  const c = await startConnector(t);
  const api = core();
  const slow = { 'mock.aci-connector.io/create-latency-ms': '5000' };
  const a = await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'graceful', { annotations: slow }),
  });
  const b = await api.createNamespacedPod({
    namespace: ns,
    body: boundPod(c.nodeName, 'forced', { annotations: slow }),
  });
  // Delete while the connector is inside createPod for both: called, not yet created.
  const inFlight = await waitFor(
    'both create calls in progress',
    () => {
      const calls = c.state().calls;
      const ca = calls[a.metadata?.uid ?? ''];
      const cb = calls[b.metadata?.uid ?? ''];
      return (ca?.createCalls ?? 0) > 0 && (cb?.createCalls ?? 0) > 0 ? { ca, cb } : undefined;
    },
    { intervalMs: 20 },
  );
  assert.equal(inFlight.ca?.created, 0, 'deleted before the backend held the pod');
  assert.equal(inFlight.cb?.created, 0, 'deleted before the backend held the pod');
  await api.deleteNamespacedPod({ name: 'graceful', namespace: ns });
  await api.deleteNamespacedPod({ name: 'forced', namespace: ns, gracePeriodSeconds: 0 });
  await waitFor(
    'both pods gone from the API',
    async () => (await podGone(ns, 'graceful')) && (await podGone(ns, 'forced')),
  );
  await waitFor('both pods gone from the backend', () => backendPods(c, ns).length === 0);
  // The positive signal: both create calls returned (the mock finishes a create it was
  // inside, as a slow backend would), and what they made was removed: nothing lingers.
  const calls = (p: V1Pod) => c.state().calls[p.metadata?.uid ?? ''];
  await waitFor('both late creates returned', () => [a, b].every((p) => (calls(p)?.created ?? 0) >= 1), {
    timeoutMs: 60_000,
  });
  await waitFor(
    'the late creates removed again',
    () => backendPods(c, ns).length === 0 && [a, b].every((p) => calls(p)?.deleted === calls(p)?.created),
    { timeoutMs: 60_000 },
  );
  for (const p of [a, b])
    assert.equal(calls(p)?.deleted, calls(p)?.created, `${p.metadata?.name}: every workload created was removed`);
});
