/**
 * Restart reconciliation: SIGKILL in the middle of creating 200 pods, then a
 * restart. Every pod runs exactly once in the backend; orphans this node
 * created are removed; a pod that was Running and vanished is failed, not
 * silently restarted; another node's (or cluster's) backend pods are untouched.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { emptyState, readMockState, writeMockState, type MockPod } from '../../src/providers/mock/state-store.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector, uniqueNodeName } from './connector-process.js';

function foreignPod(uid: string, node: string, cluster: string, namespace: string): MockPod {
  return {
    ref: { namespace, name: `foreign-${uid}`, uid },
    owner: { node, cluster },
    restartPolicy: 'Always',
    containers: [{ name: 'c', image: 'nginx', runMs: 500 }],
    startAt: Date.now(),
    podIP: '10.250.0.1',
    status: { phase: 'Running' },
    runStartedAt: {},
    env: {},
  };
}

test('SIGKILL while creating 200 pods, then restart: each pod runs exactly once, no orphans, nothing foreign touched', async (t) => {
  const ns = await freshNamespace(t, 'restart');
  const api = core();
  const nodeName = uniqueNodeName('restart');
  const dir = mkdtempSync(join(tmpdir(), `aci-connector-${nodeName}-`));
  t.after(async () => {
    await api.deleteNode({ name: nodeName }).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  const clusterId = (await api.readNamespace({ name: 'kube-system' })).metadata?.uid ?? '';
  assert.ok(clusterId);

  // The backend already holds: another node's pod, this node name's pod in another cluster,
  // and an orphan this node created whose API pod no longer exists.
  const seeded = emptyState();
  seeded.pods['other-node-uid'] = foreignPod('other-node-uid', 'some-other-node', clusterId, ns);
  seeded.pods['other-cluster-uid'] = foreignPod('other-cluster-uid', nodeName, 'another-cluster', ns);
  seeded.pods['orphan-uid'] = foreignPod('orphan-uid', nodeName, clusterId, ns);
  seeded.calls['orphan-uid'] = { created: 1, createCalls: 1, deleteCalls: 0, deleted: 0 };
  const stateFile = join(dir, 'mock-state.json');
  writeMockState(stateFile, seeded);

  const first = await startConnector(t, { nodeName, dir, extraArgs: ['--workers', '10'] });
  await waitFor('the orphan to be removed', () => !readMockState(stateFile).pods['orphan-uid'], { timeoutMs: 30_000 });

  const total = 200;
  const annotations = { 'mock.aci-connector.io/create-latency-ms': '100' };
  const creating = (async () => {
    for (let i = 0; i < total; i += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, total - i) }, (_, j) =>
          api.createNamespacedPod({
            namespace: ns,
            body: boundPod(nodeName, `p-${String(i + j).padStart(3, '0')}`, { annotations }),
          }),
        ),
      );
    }
  })();
  // Killed once the backend holds some pods and the API already shows one of them Running (status
  // writes trail the creates; the check below needs a pod that was Running before the kill).
  await waitFor(
    'some pods created in the backend, one of them reported Running',
    async () => {
      const s = readMockState(stateFile);
      if (Object.values(s.pods).filter((p) => p.owner.node === nodeName && p.owner.cluster === clusterId).length < 40)
        return false;
      return (await api.listNamespacedPod({ namespace: ns })).items.some(
        (p) => p.status?.phase === 'Running' && s.pods[p.metadata?.uid ?? ''],
      );
    },
    { intervalMs: 50 },
  );
  first.proc.kill('SIGKILL');
  await first.exited;
  await creating;

  const afterKill = readMockState(stateFile);
  const ownAfterKill = Object.values(afterKill.pods).filter(
    (p) => p.owner.node === nodeName && p.owner.cluster === clusterId,
  );
  assert.ok(ownAfterKill.length < total, `killed mid-creation (${ownAfterKill.length} of ${total} in the backend)`);

  // One pod that the API shows Running vanishes from the backend while the connector is down.
  const apiPods = (await api.listNamespacedPod({ namespace: ns })).items;
  const runningInApi = apiPods.filter((p) => p.status?.phase === 'Running' && afterKill.pods[p.metadata?.uid ?? '']);
  assert.ok(runningInApi.length > 0, 'some pods were Running before the kill');
  const lost = runningInApi[0] as k8s.V1Pod;
  const lostUid = lost.metadata?.uid ?? '';
  delete afterKill.pods[lostUid];
  writeMockState(stateFile, afterKill);

  await first.restart();
  await waitFor(
    'every other pod Running',
    async () => {
      const list = (await api.listNamespacedPod({ namespace: ns })).items;
      return list.length === total && list.filter((p) => p.status?.phase === 'Running').length === total - 1;
    },
    { timeoutMs: 180_000, intervalMs: 1000 },
  );

  const lostNow = await waitFor('the vanished pod to be failed', async () => {
    const p = await api.readNamespacedPod({ name: lost.metadata?.name ?? '', namespace: ns });
    return p.status?.phase === 'Failed' ? p : undefined;
  });
  assert.equal(lostNow.status?.reason, 'ProviderPodLost');

  const final = readMockState(stateFile);
  const list = (await api.listNamespacedPod({ namespace: ns })).items;
  const apiUids = new Set(list.map((p) => p.metadata?.uid ?? ''));
  for (const p of list) {
    const uid = p.metadata?.uid ?? '';
    assert.equal(final.calls[uid]?.created, 1, `${p.metadata?.name} created exactly once in the backend`);
  }
  const own = Object.values(final.pods).filter((p) => p.owner.node === nodeName && p.owner.cluster === clusterId);
  assert.equal(own.length, total - 1, 'the backend runs every pod but the vanished one');
  assert.ok(
    own.every((p) => apiUids.has(p.ref.uid) && p.ref.uid !== lostUid),
    'no orphans',
  );
  assert.ok(own.every((p) => p.status.phase === 'Running'));
  assert.ok(!final.pods['orphan-uid']);
  assert.equal(final.calls['orphan-uid']?.deleted, 1);

  // Never touched: another node's pod, and this node name's pod in another cluster.
  assert.deepEqual(final.pods['other-node-uid'], seeded.pods['other-node-uid']);
  assert.deepEqual(final.pods['other-cluster-uid'], seeded.pods['other-cluster-uid']);
  assert.equal(final.calls['other-node-uid'], undefined);
  assert.equal(final.calls['other-cluster-uid'], undefined);
});
