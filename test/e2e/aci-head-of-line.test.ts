/**
 * No head-of-line blocking: with 495 creates waiting on ACI's creation window, a pod whose group
 * runs is reported Running within seconds, and a delete goes through without waiting for them.
 * The real control plane and the connector, against the emulator (simulated runtime).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { ACI_TAGS } from '../../src/providers/aci/index.js';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';

const RG = `hol-${Math.random().toString(36).slice(2, 8)}`;
const PODS = 500;
const WINDOW = 5;

// ACI's creation window is lowered from 100 to 5 per 5 minutes (for the emulator and the connector
// alike), so that 500 pods leave 495 creates waiting, as 600 would under the real window. Groups
// start a minute after their create, so that the first ones run once the rest wait. The quota and the
// deletion windows are ACI's.
const aci = useEmulatorForFile(RG, {
  simulated: { pullMs: 20, startMs: 60_000 },
  limits: { creations: [{ count: WINDOW, windowSeconds: 300 }] },
});

function pod(node: string, name: string): V1Pod {
  return boundPod(node, name, {
    spec: {
      automountServiceAccountToken: false,
      containers: [{ name: 'app', image: 'nginx', resources: { requests: { cpu: '100m', memory: '128Mi' } } }],
    },
  });
}

async function groupsOf(node: string) {
  return (await aci.inspector.arm.listGroups()).filter((g) => g.tags?.[ACI_TAGS.nodeName] === node);
}

test(
  `${PODS - WINDOW} creates waiting on the window: a pod whose group runs is reported within 5 s, a delete goes through`,
  { timeout: 900_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'aci-hol');
    const c = await startConnector(t, {
      extraArgs: ['--provider', 'aci'],
      env: { ...aci.env, ACI_CREATION_WINDOWS: `${WINDOW}/300` },
    });
    aci.emu.resetStats();
    const names = Array.from({ length: PODS }, (_, i) => `p-${i}`);
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(
        names.slice(i, i + 50).map((n) => core().createNamespacedPod({ namespace: ns, body: pod(c.nodeName, n) })),
      );
    }
    const listPods = async () => (await core().listNamespacedPod({ namespace: ns })).items;
    // Every pod without a group says why it waits, and until when.
    const paced = await waitFor(
      `${PODS - WINDOW} pods waiting on the window`,
      async () => {
        const waiting = (await listPods()).filter(
          (p) => p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreationPaced',
        );
        return waiting.length === PODS - WINDOW ? waiting : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 1_000 },
    );
    const allWaitingAt = Date.now();
    const sample = paced[0];
    assert.equal(sample?.status?.phase, 'Pending');
    const ready = sample?.status?.conditions?.find((x) => x.type === 'Ready');
    assert.equal(ready?.reason, 'CreationPaced');
    assert.match(ready?.message ?? '', /allows 5 container group creations per 5 min .*expected at \d{4}-\d\d-\d\dT/);
    const groups = await groupsOf(c.nodeName);
    assert.equal(groups.length, WINDOW, "only the window's groups exist");

    // The first group to run: when the emulator ran its container, and when the connector wrote the pod
    // Running (its Ready condition's transition, whole seconds: counted as the end of that second).
    const early = groups[0]?.tags?.[ACI_TAGS.podName];
    assert.ok(early && groups[0]?.name);
    const groupName = groups[0].name;
    const running = await waitFor(
      `${early} Running`,
      async () => {
        const p = await core().readNamespacedPod({ name: early, namespace: ns });
        return p.status?.phase === 'Running' ? p : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 500 },
    );
    const readyAt = new Date(
      running.status?.conditions?.find((x) => x.type === 'Ready' && x.status === 'True')?.lastTransitionTime ?? NaN,
    ).getTime();
    const g = await aci.inspector.arm.getGroup(groupName);
    const ranAt = new Date(g?.containers[0]?.instanceView?.currentState?.startTime ?? NaN).getTime();
    assert.ok(Number.isFinite(ranAt) && Number.isFinite(readyAt), 'the group and the pod say when');
    assert.ok(allWaitingAt < ranAt, 'the group ran while the other creates were waiting');
    const lagMs = readyAt + 1_000 - ranAt;
    t.diagnostic(
      `${early} reported Running at most ${lagMs} ms after its group ran; ${PODS - WINDOW} creates were waiting from ${Math.round((ranAt - allWaitingAt) / 1000)} s before`,
    );
    assert.ok(lagMs <= 5_000, `reported Running ${lagMs} ms after its group ran`);

    // A delete meanwhile: the pod and its group are gone while the creates still wait.
    const victim = groups[1]?.tags?.[ACI_TAGS.podName];
    assert.ok(victim);
    await core().deleteNamespacedPod({ name: victim, namespace: ns });
    await waitFor(
      `${victim} deleted`,
      async () =>
        core()
          .readNamespacedPod({ name: victim, namespace: ns })
          .then(
            () => false,
            () => true,
          ),
      { timeoutMs: 120_000, intervalMs: 500 },
    );
    const left = await groupsOf(c.nodeName);
    assert.equal(left.length, WINDOW - 1, "the victim's group is gone and no other was created");
    assert.ok(!left.some((x) => x.tags?.[ACI_TAGS.podName] === victim), "the victim's group is the one deleted");
    const stats = aci.emu.stats();
    t.diagnostic(`emulator: ${JSON.stringify(stats.callsByOperation)}; creation 429s ${stats.creationsThrottled}`);
    assert.equal(stats.creationsThrottled, 0, 'no create bounced off the window');
    assert.equal(stats.callsByOperation['ContainerGroups_CreateOrUpdate'], WINDOW, 'no PUT beyond the window');

    // Clean up: the waiting pods leave without a group (and without a slot of the deletion windows).
    await Promise.all(
      names
        .filter((n) => n !== victim)
        .map((n) => core().deleteNamespacedPod({ name: n, namespace: ns, gracePeriodSeconds: 0 })),
    );
    await waitFor('no pod left', async () => (await listPods()).length === 0, {
      timeoutMs: 300_000,
      intervalMs: 2_000,
    });
    // A pod deleted with no grace period leaves the API at once: its group follows.
    await waitFor('no group left', async () => (await groupsOf(c.nodeName)).length === 0, {
      timeoutMs: 120_000,
      intervalMs: 1_000,
    });
  },
);
