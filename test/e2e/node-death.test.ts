/**
 * A connector that dies: the control plane's node lifecycle controller marks the
 * node NotReady once the Lease lapses (nothing in the connector does it), and a
 * restarted connector brings it back Ready, adopting the existing Node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { backendPods, boundPod, core, startConnector } from './connector-process.js';

function ready(n: k8s.V1Node): k8s.V1NodeCondition | undefined {
  return n.status?.conditions?.find((c) => c.type === 'Ready');
}

test('after SIGKILL the node goes NotReady through the control plane; a restart makes it Ready again', async (t) => {
  const ns = await freshNamespace(t, 'death');
  const c = await startConnector(t);
  const api = core();
  await api.createNamespacedPod({ namespace: ns, body: boundPod(c.nodeName, 'survivor') });
  await waitFor(
    'pod Running',
    async () => (await api.readNamespacedPod({ name: 'survivor', namespace: ns })).status?.phase === 'Running',
  );
  const uid = backendPods(c, ns)[0]?.ref.uid ?? '';
  const nodeUid = (await api.readNode({ name: c.nodeName })).metadata?.uid;

  c.proc.kill('SIGKILL');
  await c.exited;
  const down = await waitFor(
    'the node lifecycle controller to mark the node not ready',
    async () => {
      const n = await api.readNode({ name: c.nodeName });
      const r = ready(n);
      return r && r.status !== 'True' ? n : undefined;
    },
    { timeoutMs: 150_000, intervalMs: 2000 },
  );
  assert.equal(ready(down)?.status, 'Unknown');
  assert.equal(ready(down)?.reason, 'NodeStatusUnknown');

  const again = await c.restart();
  const up = await waitFor(
    'Ready True after the restart',
    async () => {
      const n = await api.readNode({ name: c.nodeName });
      return ready(n)?.status === 'True' ? n : undefined;
    },
    { timeoutMs: 60_000 },
  );
  assert.equal(up.metadata?.uid, nodeUid, 'the existing Node was adopted, not recreated');
  const pod = await api.readNamespacedPod({ name: 'survivor', namespace: ns });
  assert.equal(pod.status?.phase, 'Running');
  assert.equal(again.state().calls[uid]?.created, 1, 'the pod was adopted, not created again');
});
