/**
 * A pod adopted after a connector restart still gets its backend's events: the ACI provider
 * reports them through the provider's events channel (Provider.onEvent), not through a
 * recorder kept from createPod, which an adopted pod never passed through.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { ACI_TAGS } from '../../src/providers/aci/index.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';
import { useEmulatorForFile } from './aci-emulator-env.js';

const RG = `e2e-${Math.random().toString(36).slice(2, 8)}`;
const aci = useEmulatorForFile(RG, { simulated: { pullMs: 50, startMs: 50 } });

async function eventsOf(ns: string, pod: string, uid: string): Promise<k8s.CoreV1Event[]> {
  const list = await core().listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${pod}` });
  return list.items.filter((e) => e.involvedObject.uid === uid);
}

test(
  'after a restart, an adopted pod gets the ACI events and the ProviderGroupVanished Warning',
  { timeout: 300_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'aci-adopt-ev');
    const first = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({
      namespace: ns,
      body: boundPod(first.nodeName, 'web', {
        spec: { restartPolicy: 'Always', containers: [{ name: 'app', image: 'nginx' }] },
      }),
    });
    const running = await waitFor(
      'web Running',
      async () => {
        const p = await core().readNamespacedPod({ name: 'web', namespace: ns });
        return p.status?.phase === 'Running' ? p : undefined;
      },
      { timeoutMs: 90_000 },
    );
    const uid = running.metadata?.uid ?? '';
    // The first connector reported the creation's events (it created the group).
    await waitFor('Started event from the first connector', async () =>
      (await eventsOf(ns, 'web', uid)).some((e) => e.reason === 'Started'),
    );

    first.proc.kill('SIGTERM');
    await first.exited;
    const second = await first.restart();
    await waitFor('the restarted connector adopted the pod', async () => /"adopted":1\b/.test(second.output()), {
      timeoutMs: 60_000,
    });

    const groups = (await aci.inspector.arm.listGroups()).filter((g) => g.tags?.[ACI_TAGS.podUid] === uid);
    assert.equal(groups.length, 1, 'one group for the pod');
    const group = groups[0]?.name ?? '';

    // An ACI event that happens only after the restart: a restart of the group (Killing, then Started again).
    await aci.inspector.arm.client.containerGroups.beginRestartAndWait(RG, group);
    const killing = await waitFor(
      'the ACI Killing event on the adopted pod',
      async () => {
        return (await eventsOf(ns, 'web', uid)).find(
          (e) => e.reason === 'Killing' && /Killing container for restart/.test(e.message ?? ''),
        );
      },
      { timeoutMs: 120_000 },
    );
    assert.equal(killing.type, 'Normal');
    assert.match(killing.message ?? '', /^container app: /, 'the ACI container event names its container');

    // The group deleted out of band: the pod fails and gets the Warning.
    await aci.inspector.arm.deleteGroup(group);
    const vanished = await waitFor(
      'the ProviderGroupVanished Warning on the adopted pod',
      async () => {
        return (await eventsOf(ns, 'web', uid)).find((e) => e.reason === 'ProviderGroupVanished');
      },
      { timeoutMs: 120_000 },
    );
    assert.equal(vanished.type, 'Warning');
    assert.match(vanished.message ?? '', new RegExp(`container group ${group} was deleted outside Kubernetes`));
    const failed = await waitFor('the pod Failed', async () => {
      const p = await core().readNamespacedPod({ name: 'web', namespace: ns });
      return p.status?.phase === 'Failed' ? p : undefined;
    });
    assert.equal(failed.status?.reason, 'ProviderGroupVanished');
  },
);
