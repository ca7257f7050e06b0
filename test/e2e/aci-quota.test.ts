/**
 * Quota exhaustion and groups deleted behind the connector's back, through the
 * real control plane with the emulator standing in for Azure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { ACI_TAGS } from '../../src/providers/aci/index.js';
import { defaultQuota } from '../../src/emulator/index.js';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';

const aci = useEmulatorForFile('quota', { simulated: { pullMs: 20, startMs: 20 } });

function pod(node: string, name: string): V1Pod {
  return boundPod(node, name, {
    spec: { automountServiceAccountToken: false, containers: [{ name: 'app', image: 'nginx' }] },
  });
}

test(
  'quota exhaustion keeps pods Pending with the reason and an event; they start once capacity frees',
  { timeout: 300_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'aci-quota');
    aci.emu.setQuota({ containerGroups: 2 });
    try {
      const c = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
      for (const n of ['q-0', 'q-1']) await core().createNamespacedPod({ namespace: ns, body: pod(c.nodeName, n) });
      await waitFor(
        'two Running',
        async () =>
          (await core().listNamespacedPod({ namespace: ns })).items.filter((p) => p.status?.phase === 'Running')
            .length === 2,
      );
      await core().createNamespacedPod({ namespace: ns, body: pod(c.nodeName, 'q-2') });
      const waiting = await waitFor('q-2 waiting on quota', async () => {
        const p = await core().readNamespacedPod({ name: 'q-2', namespace: ns });
        return p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'QuotaExceeded' ? p : undefined;
      });
      assert.equal(waiting.status?.phase, 'Pending');
      // Events follow the status write (they wait while pod work is queued), so wait for it.
      await waitFor('a QuotaExceeded Warning on q-2', async () => {
        const events = await core().listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=q-2' });
        return events.items.some((e) => e.reason === 'QuotaExceeded' && e.type === 'Warning');
      });

      await core().deleteNamespacedPod({ name: 'q-0', namespace: ns });
      await waitFor(
        'q-2 Running after capacity freed',
        async () => (await core().readNamespacedPod({ name: 'q-2', namespace: ns })).status?.phase === 'Running',
        { timeoutMs: 180_000 },
      );
    } finally {
      aci.emu.setQuota(defaultQuota());
    }
  },
);

test(
  'a group deleted behind the connector’s back fails its Running pod with a reason, and is not re-created',
  { timeout: 300_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'aci-vanish');
    const c = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({ namespace: ns, body: pod(c.nodeName, 'victim') });
    const running = await waitFor('victim Running', async () => {
      const p = await core().readNamespacedPod({ name: 'victim', namespace: ns });
      return p.status?.phase === 'Running' ? p : undefined;
    });
    const [g] = (await aci.inspector.arm.listGroups()).filter(
      (x) => x.tags?.[ACI_TAGS.podUid] === running.metadata?.uid,
    );
    assert.ok(g?.name);
    await aci.inspector.arm.deleteGroup(g.name);
    const creates = (): number => aci.emu.stats().callsByOperation['ContainerGroups_CreateOrUpdate'] ?? 0;
    const lists = (): number => aci.emu.stats().callsByOperation['ContainerGroups_ListByResourceGroup'] ?? 0;
    const failed = await waitFor(
      'victim Failed',
      async () => {
        const p = await core().readNamespacedPod({ name: 'victim', namespace: ns });
        return p.status?.phase === 'Failed' ? p : undefined;
      },
      { timeoutMs: 120_000 },
    );
    assert.equal(failed.status?.reason, 'ProviderGroupVanished');
    assert.match(failed.status?.message ?? '', /deleted outside Kubernetes/);
    // The positive signal: the connector listed the resource group twice more (full status
    // passes, each after the pod controller had seen the failure), and sent no PUT meanwhile.
    const createsAtFailure = creates();
    const listsAtFailure = lists();
    await waitFor('two more list passes of the connector', () => lists() >= listsAtFailure + 2, { timeoutMs: 90_000 });
    assert.equal(creates(), createsAtFailure, 'no PUT after the group vanished');
    assert.equal(
      (await aci.inspector.arm.listGroups()).filter((x) => x.tags?.[ACI_TAGS.podUid] === running.metadata?.uid).length,
      0,
    );
  },
);
