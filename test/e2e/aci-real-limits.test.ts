/**
 * ACI's real creation windows, end to end: 250 pods at once against the emulator's default
 * limits (100 creations per 5 minutes and 300 per hour, per subscription and region). The
 * connector paces the creates: every pod runs as the windows allow (100 now, 100 after 5
 * minutes, 50 after 10), no create bounces off a window, the waiting pods say so, one PUT each.
 * About 11 minutes: the scale tier.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { ACI_TAGS } from '../../src/providers/aci/index.js';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';

const RG = `limits-${Math.random().toString(36).slice(2, 8)}`;
const PODS = 250;

// ACI's creation windows and ARM's buckets as they are. Lifted, and why:
// - the regional group quota (ACI's default: 100 groups), raised to 300: with it, at most 100 of
//   the 250 pods could exist at once whatever the windows, and the windows are under test;
// - the deletion windows (emulator and connector): the clean-up of 250 pods would wait another
//   10 minutes; the deletes go through the same pacer (test/unit/aci-pacer.test) and the deletion
//   windows are proven in aci-provider.test and the emulator's errors.test.
const lifted = { count: 100_000, windowSeconds: 60 };
const aci = useEmulatorForFile(RG, {
  simulated: { pullMs: 20, startMs: 20 },
  limits: { deletions: lifted },
  quota: { containerGroups: 300 },
});

function pod(node: string, name: string): V1Pod {
  return boundPod(node, name, {
    spec: {
      automountServiceAccountToken: false,
      containers: [{ name: 'app', image: 'nginx', resources: { requests: { cpu: '100m', memory: '128Mi' } } }],
    },
  });
}

test(
  `${PODS} pods at once under ACI's real creation windows: all run as the windows allow, 0 creation 429s, the waiting pods say so`,
  { timeout: 1_200_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'aci-limits');
    const c = await startConnector(t, {
      extraArgs: ['--provider', 'aci'],
      env: { ...aci.env, ACI_DELETION_WINDOWS: '100000/60' },
    });
    aci.emu.resetStats();
    const started = Date.now();
    const names = Array.from({ length: PODS }, (_, i) => `p-${i}`);
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(
        names.slice(i, i + 50).map((n) => core().createNamespacedPod({ namespace: ns, body: pod(c.nodeName, n) })),
      );
    }
    const listPods = async () => (await core().listNamespacedPod({ namespace: ns })).items;
    const waitingOf = (p: V1Pod) => p.status?.containerStatuses?.[0]?.state?.waiting;

    // The first window: 100 run, 150 wait with the reason and the expected time.
    const first = await waitFor(
      '100 Running, 150 waiting on the window',
      async () => {
        const pods = await listPods();
        const running = pods.filter((p) => p.status?.phase === 'Running');
        const waiting = pods.filter((p) => waitingOf(p)?.reason === 'CreationPaced');
        return running.length === 100 && waiting.length === PODS - 100 ? { pods, waiting } : undefined;
      },
      { timeoutMs: 240_000, intervalMs: 2_000 },
    );
    for (const p of first.waiting) {
      assert.equal(p.status?.phase, 'Pending');
      const ready = p.status?.conditions?.find((x) => x.type === 'Ready');
      assert.equal(ready?.reason, 'CreationPaced');
      assert.match(ready?.message ?? '', /allows 100 container group creations per 5 min .*; expected at /);
    }
    // The expected times: the next 100 once the first leave the 5-minute window, the last 50 five minutes later.
    const expected = first.waiting
      .map((p) => Date.parse(/expected at (\S+)$/.exec(waitingOf(p)?.message ?? '')?.[1] ?? ''))
      .sort((a, b) => a - b);
    const second = expected.slice(0, 100);
    const third = expected.slice(100);
    assert.ok(
      second.every((x) => x - started >= 295_000 && x - started <= 420_000),
      `the second hundred expected about 5 minutes on: ${(((second[0] ?? 0) - started) / 1000).toFixed(0)}–${(((second.at(-1) ?? 0) - started) / 1000).toFixed(0)} s`,
    );
    assert.ok(
      third.every((x) => x - (second[0] ?? 0) >= 295_000),
      'the last 50 expected a window after the second hundred',
    );
    // Events follow the status writes (they wait while pod work is queued): wait for it.
    const event = await waitFor('a CreationPaced Event', async () => {
      const list = await core().listNamespacedEvent({
        namespace: ns,
        fieldSelector: `involvedObject.name=${first.waiting[0]?.metadata?.name ?? ''},reason=CreationPaced`,
      });
      return list.items[0];
    });
    assert.match(event.message ?? '', /expected at /, 'a CreationPaced Event with the expected time');

    const all = await waitFor(
      `${PODS} Running`,
      async () => {
        const pods = await listPods();
        return pods.filter((p) => p.status?.phase === 'Running').length === PODS ? pods : undefined;
      },
      { timeoutMs: 1_000_000, intervalMs: 5_000 },
    );
    const elapsedS = (Date.now() - started) / 1000;
    const stats = aci.emu.stats();
    t.diagnostic(
      `${PODS} pods Running in ${elapsedS.toFixed(0)} s; emulator saw ${JSON.stringify(stats.callsByOperation)}; 429s: ${stats.throttled} (creation windows ${stats.creationsThrottled})`,
    );
    assert.equal(all.length, PODS);
    assert.equal(stats.creationsThrottled, 0, 'no create bounced off a window');
    assert.equal(stats.callsByOperation['ContainerGroups_CreateOrUpdate'], PODS, 'one PUT per pod');
    // The windows held the last 50 for two of them: the time the windows allow, not less.
    assert.ok(elapsedS >= 600, `the last pods waited two windows (${elapsedS.toFixed(0)} s)`);
    const groups = (await aci.inspector.arm.listGroups()).filter((g) => g.tags?.[ACI_TAGS.nodeName] === c.nodeName);
    assert.equal(groups.length, PODS);

    await Promise.all(names.map((n) => core().deleteNamespacedPod({ name: n, namespace: ns, gracePeriodSeconds: 0 })));
    await waitFor('no pod left', async () => (await listPods()).length === 0, {
      timeoutMs: 300_000,
      intervalMs: 2_000,
    });
    // A pod deleted with no grace period leaves the API at once: its group follows.
    const left = async () =>
      (await aci.inspector.arm.listGroups()).filter((g) => g.tags?.[ACI_TAGS.nodeName] === c.nodeName).length;
    await waitFor('no group left', async () => (await left()) === 0, { timeoutMs: 300_000, intervalMs: 2_000 });
  },
);
