/** Workloads driven by the real controllers: a Deployment scaled up and down, a Job. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { adminKubeConfig, freshNamespace, waitFor } from '../support/cluster.js';
import { backendPods, placeOn, startConnector } from './connector-process.js';

test('a Deployment of 20 tolerating replicas becomes available; scaling to 0 empties the backend', async (t) => {
  const ns = await freshNamespace(t, 'deploy');
  const c = await startConnector(t);
  const apps = adminKubeConfig().makeApiClient(k8s.AppsV1Api);
  await apps.createNamespacedDeployment({
    namespace: ns,
    body: {
      metadata: { name: 'web' },
      spec: {
        replicas: 20,
        selector: { matchLabels: { app: 'web' } },
        template: {
          metadata: { labels: { app: 'web' } },
          spec: {
            ...placeOn(c.nodeName),
            terminationGracePeriodSeconds: 2,
            containers: [{ name: 'c', image: 'nginx' }],
          },
        },
      },
    },
  });
  await waitFor(
    '20 available replicas',
    async () => {
      const d = await apps.readNamespacedDeployment({ name: 'web', namespace: ns });
      return d.status?.availableReplicas === 20;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
  const running = backendPods(c, ns);
  assert.equal(running.length, 20);
  assert.ok(running.every((p) => p.status.phase === 'Running'));
  const uids = running.map((p) => p.ref.uid);
  assert.ok(
    uids.every((u) => c.state().calls[u]?.created === 1),
    'each replica created exactly once',
  );

  await apps.patchNamespacedDeploymentScale(
    { name: 'web', namespace: ns, body: { spec: { replicas: 0 } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  const core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  await waitFor(
    'no pods left in the API',
    async () => (await core.listNamespacedPod({ namespace: ns })).items.length === 0,
    { timeoutMs: 120_000 },
  );
  assert.equal(backendPods(c, ns).length, 0, 'the backend holds nothing of the Deployment');
});

test('a Job whose pod exits 0 completes', async (t) => {
  const ns = await freshNamespace(t, 'job');
  const c = await startConnector(t);
  const batch = adminKubeConfig().makeApiClient(k8s.BatchV1Api);
  await batch.createNamespacedJob({
    namespace: ns,
    body: {
      metadata: { name: 'once' },
      spec: {
        backoffLimit: 0,
        template: {
          metadata: { annotations: { 'mock.aci-connector.io/exit-code': '0', 'mock.aci-connector.io/run-ms': '300' } },
          spec: { ...placeOn(c.nodeName), restartPolicy: 'Never', containers: [{ name: 'c', image: 'busybox' }] },
        },
      },
    },
  });
  const job = await waitFor(
    'the Job to complete',
    async () => {
      const j = await batch.readNamespacedJob({ name: 'once', namespace: ns });
      return j.status?.conditions?.some((x) => x.type === 'Complete' && x.status === 'True') ? j : undefined;
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
  assert.equal(job.status?.succeeded, 1);
  const core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
  const pods = (await core.listNamespacedPod({ namespace: ns })).items;
  assert.equal(pods.length, 1);
  const p = pods[0];
  assert.equal(p?.status?.phase, 'Succeeded');
  const term = p?.status?.containerStatuses?.[0]?.state?.terminated;
  assert.equal(term?.exitCode, 0);
  assert.equal(term?.reason, 'Completed');
  assert.equal(p?.status?.conditions?.find((x) => x.type === 'Ready')?.status, 'False');
});
