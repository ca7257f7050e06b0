/**
 * The node: registration (labels, taint, capacity, nodeInfo, addresses),
 * Lease renewal, recreation after deletion, Ready following the provider's
 * health, and a clean SIGTERM that leaves pods alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import { adminKubeConfig, freshNamespace, waitFor } from '../support/cluster.js';
import { backendPods, boundPod, core, startConnector } from './connector-process.js';

function readyCondition(n: k8s.V1Node): k8s.V1NodeCondition | undefined {
  return n.status?.conditions?.find((c) => c.type === 'Ready');
}

test('the node registers Ready with its taint, labels, capacity, nodeInfo and addresses, and renews its Lease', async (t) => {
  const c = await startConnector(t, { extraArgs: ['--kubelet-port', '10777'] });
  const api = core();
  const node = await waitFor(
    'node Ready',
    async () => {
      const n = await api.readNode({ name: c.nodeName });
      return readyCondition(n)?.status === 'True' ? n : undefined;
    },
    { timeoutMs: 15_000 },
  );

  // Only ours: the node lifecycle controller may add its own not-ready taint for a moment.
  const ours = (node.spec?.taints ?? []).filter((x) => !x.key.startsWith('node.kubernetes.io/'));
  assert.deepEqual(
    ours.map((x) => [x.key, x.value, x.effect]),
    [['azure.com/aci', undefined, 'NoSchedule']],
  );
  const labels = node.metadata?.labels ?? {};
  assert.equal(labels.type, 'virtual-kubelet');
  assert.equal(labels['kubernetes.io/role'], undefined, 'a node may not set its own role label (NodeRestriction)');
  assert.equal(labels['kubernetes.io/hostname'], c.nodeName);
  assert.equal(labels['kubernetes.io/os'], 'linux');
  assert.equal(labels['kubernetes.io/arch'], 'amd64');
  // Old charts still select on the beta label.
  assert.equal(labels['beta.kubernetes.io/os'], 'linux');
  assert.equal(labels['topology.kubernetes.io/region'], 'mock-region-1');
  assert.equal(labels['topology.kubernetes.io/zone'], 'mock-region-1-a');

  const st = node.status ?? {};
  assert.equal(st.capacity?.cpu, '1k');
  assert.equal(st.capacity?.memory, '4Ti');
  assert.equal(st.capacity?.pods, '5k');
  assert.equal(st.capacity?.['ephemeral-storage'], '10Ti');
  assert.deepEqual(st.allocatable, st.capacity, 'allocatable carries every resource, ephemeral-storage included');
  assert.match(st.nodeInfo?.kubeletVersion ?? '', /^v\d+\.\d+\.\d+-aci-connector-\d+\.\d+\.\d+/);
  assert.equal(st.nodeInfo?.operatingSystem, 'linux');
  assert.equal(st.nodeInfo?.architecture, 'amd64');
  assert.deepEqual((st.addresses ?? []).map((a) => [a.type, a.address]).sort(), [
    ['Hostname', c.nodeName],
    ['InternalIP', '127.0.0.1'],
  ]);
  assert.equal(st.daemonEndpoints?.kubeletEndpoint?.Port, 10777);
  const ready = readyCondition(node);
  assert.equal(ready?.reason, 'KubeletReady');
  for (const type of ['MemoryPressure', 'DiskPressure', 'PIDPressure']) {
    assert.equal(st.conditions?.find((x) => x.type === type)?.status, 'False', type);
  }

  const coord = adminKubeConfig().makeApiClient(k8s.CoordinationV1Api);
  const lease = await coord.readNamespacedLease({ name: c.nodeName, namespace: 'kube-node-lease' });
  assert.equal(lease.spec?.holderIdentity, c.nodeName);
  assert.equal(lease.spec?.leaseDurationSeconds, 40);
  assert.equal(lease.metadata?.ownerReferences?.[0]?.uid, node.metadata?.uid, 'the Lease is owned by the Node');
  const first = new Date(lease.spec?.renewTime ?? 0).getTime();
  await waitFor(
    'the Lease to be renewed',
    async () => {
      const l = await coord.readNamespacedLease({ name: c.nodeName, namespace: 'kube-node-lease' });
      return new Date(l.spec?.renewTime ?? 0).getTime() > first;
    },
    { timeoutMs: 30_000, intervalMs: 1000 },
  );

  // The operations endpoint answers on loopback.
  const port = c.metricsPort();
  assert.ok(port);
  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
  assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  for (const name of [
    'aci_connector_pods',
    'aci_connector_workqueue_depth',
    'aci_connector_kube_api_requests_total',
    'aci_connector_pod_reconcile_seconds',
    'aci_connector_provider_call_seconds',
  ]) {
    assert.ok(metrics.includes(name), `metric ${name}`);
  }
});

test('a Node deleted from outside comes back', async (t) => {
  const c = await startConnector(t);
  const api = core();
  const before = await api.readNode({ name: c.nodeName });
  await api.deleteNode({ name: c.nodeName });
  const after = await waitFor(
    'the node to be registered again',
    async () => {
      try {
        const n = await api.readNode({ name: c.nodeName });
        return n.metadata?.uid !== before.metadata?.uid && readyCondition(n)?.status === 'True' ? n : undefined;
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 30_000 },
  );
  assert.ok(after.spec?.taints?.some((x) => x.key === 'azure.com/aci' && x.effect === 'NoSchedule'));
  assert.equal(after.metadata?.labels?.type, 'virtual-kubelet');
});

test("the provider's health drives Ready, with a reason and message", async (t) => {
  const c = await startConnector(t);
  const api = core();
  await waitFor('Ready True', async () => readyCondition(await api.readNode({ name: c.nodeName }))?.status === 'True');
  writeFileSync(c.healthFile, 'the backend region is down for maintenance');
  const bad = await waitFor(
    'Ready False',
    async () => {
      const r = readyCondition(await api.readNode({ name: c.nodeName }));
      return r?.status === 'False' ? r : undefined;
    },
    { timeoutMs: 30_000 },
  );
  assert.equal(bad.reason, 'MockBackendUnhealthy');
  assert.equal(bad.message, 'the backend region is down for maintenance');
  rmSync(c.healthFile);
  await waitFor(
    'Ready True again',
    async () => readyCondition(await api.readNode({ name: c.nodeName }))?.status === 'True',
    { timeoutMs: 30_000 },
  );
});

test('SIGTERM stops the connector cleanly without deleting pods or the node', async (t) => {
  const ns = await freshNamespace(t, 'sigterm');
  const c = await startConnector(t);
  const api = core();
  await api.createNamespacedPod({ namespace: ns, body: boundPod(c.nodeName, 'stays') });
  await waitFor(
    'pod Running',
    async () => (await api.readNamespacedPod({ name: 'stays', namespace: ns })).status?.phase === 'Running',
  );
  c.proc.kill('SIGTERM');
  const exit = await c.exited;
  assert.equal(exit.code, 0, c.output());
  const pod = await api.readNamespacedPod({ name: 'stays', namespace: ns });
  assert.equal(pod.metadata?.deletionTimestamp, undefined);
  assert.equal(pod.status?.phase, 'Running');
  assert.equal(backendPods(c, ns).length, 1, 'the backend still runs the pod');
  await api.readNode({ name: c.nodeName });
});

test('--taint sets several taints, and --taint none registers an untainted node', async (t) => {
  const several = await startConnector(t, {
    extraArgs: ['--taint', 'team=blue:NoExecute', '--taint', 'example.com/virtual:PreferNoSchedule'],
  });
  const none = await startConnector(t, { extraArgs: ['--taint', 'none'] });
  const api = core();
  const ours = (n: k8s.V1Node) =>
    (n.spec?.taints ?? [])
      .filter((x) => !x.key.startsWith('node.kubernetes.io/'))
      .map((x) => [x.key, x.value, x.effect]);
  assert.deepEqual(ours(await api.readNode({ name: several.nodeName })), [
    ['team', 'blue', 'NoExecute'],
    ['example.com/virtual', undefined, 'PreferNoSchedule'],
  ]);
  assert.deepEqual(ours(await api.readNode({ name: none.nodeName })), []);
});
