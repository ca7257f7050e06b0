/**
 * Image references a kubelet cannot parse, through the real control plane with the ACI
 * provider and the emulator: the pod stays Pending with the container waiting in
 * InvalidImageName and the kubelet's message and Events, nothing reaches ACI, and a
 * corrected image (pod images are mutable) starts it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';

const aci = useEmulatorForFile('invalid-image', { simulated: { pullMs: 20, startMs: 20 } });

const pod = (node: string, name: string, image: string): V1Pod =>
  boundPod(node, name, { spec: { automountServiceAccountToken: false, containers: [{ name: 'app', image }] } });

test(
  'an invalid image reference gives InvalidImageName, Pending, with the kubelet’s message and Events; fixing the image starts the pod',
  { timeout: 300_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'aci-invalid-image');
    const c = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    const cases = [
      { name: 'space', image: 'registry.example/my app:1', detail: 'invalid reference format' },
      { name: 'upper', image: 'BUSYBOX', detail: 'invalid reference format: repository name must be lowercase' },
      { name: 'digest', image: 'busybox@sha256:abc', detail: 'invalid reference format' },
    ];
    for (const x of cases) await core().createNamespacedPod({ namespace: ns, body: pod(c.nodeName, x.name, x.image) });

    for (const x of cases) {
      const p = await waitFor(`${x.name} waiting in InvalidImageName`, async () => {
        const got = await core().readNamespacedPod({ name: x.name, namespace: ns });
        return got.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'InvalidImageName' ? got : undefined;
      });
      const message = `Failed to apply default image tag "${x.image}": couldn't parse image reference "${x.image}": ${x.detail}`;
      assert.equal(p.status?.phase, 'Pending', x.name);
      assert.equal(p.status?.containerStatuses?.[0]?.state?.waiting?.message, message, x.name);
      assert.equal(p.status?.containerStatuses?.[0]?.ready, false);
      const events = await waitFor(`${x.name} events`, async () => {
        const list = (
          await core().listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${x.name}` })
        ).items;
        const inspect = list.find((e) => e.reason === 'InspectFailed');
        const invalid = list.find((e) => e.reason === 'InvalidImageName');
        return inspect && invalid ? { inspect, invalid } : undefined;
      });
      assert.equal(events.inspect.type, 'Warning');
      assert.equal(events.inspect.message, message);
      assert.equal(events.invalid.type, 'Warning');
      assert.ok(events.invalid.message?.includes(message), events.invalid.message);
    }
    // Nothing reached ACI.
    assert.deepEqual(
      (await aci.inspector.arm.listGroups()).map((g) => g.name),
      [],
    );

    // Pod images are mutable: the corrected one is picked up on the next attempt.
    await waitFor('the image corrected', async () => {
      const fixed = await core().readNamespacedPod({ name: 'upper', namespace: ns });
      fixed.spec!.containers[0]!.image = 'busybox';
      // A status write in between makes this a conflict: read again and retry.
      return core()
        .replaceNamespacedPod({ name: 'upper', namespace: ns, body: fixed })
        .then(
          () => true,
          () => false,
        );
    });
    await waitFor(
      'upper Running with the corrected image',
      async () => (await core().readNamespacedPod({ name: 'upper', namespace: ns })).status?.phase === 'Running',
      {
        timeoutMs: 180_000,
      },
    );
    const still = await core().readNamespacedPod({ name: 'space', namespace: ns });
    assert.equal(still.status?.phase, 'Pending');
  },
);
