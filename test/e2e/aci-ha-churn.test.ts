/**
 * HA under churn: two connector replicas (--leader-elect) for one node with the ACI provider,
 * against the real control plane and the emulator. 300 pods are created and most deleted again
 * while the leader is SIGKILLed three times at random moments (each killed replica is started
 * again, as its Deployment would). Then: no duplicate group, no orphan, no lost pod, no stuck
 * pod; the node never NotReady for more than 20 s; every failover under 15 s.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { ACI_TAGS } from '../../src/providers/aci/index.js';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, uniqueNodeName } from './connector-process.js';
import {
  leaseHolder,
  leaseNamespace,
  restartReplica,
  startReplica,
  watchNodeReady,
  type Replica,
} from './ha-support.js';

const RG = `ha-churn-${Math.random().toString(36).slice(2, 8)}`;

// ACI's creation and deletion windows are lifted (useEmulatorForFile's default, the connector's too):
// failover under churn is under test, not ACI's windows (300 creates would take an hour under them).
// The group quota too: up to 300 groups may exist at once.
const aci = useEmulatorForFile(RG, { simulated: { pullMs: 50, startMs: 50 }, quota: { containerGroups: 1000 } });

const TOTAL = 300;
/** The last pods stay until the end and must all run; the others are deleted ~15 s after their create. */
const KEPT = 60;
const CREATES_PER_SECOND = 4;
const LIFE_MS = 15_000;
const KILLS = 3;

function pod(node: string, name: string): V1Pod {
  return boundPod(node, name, {
    spec: { containers: [{ name: 'app', image: 'nginx', resources: { requests: { cpu: '100m', memory: '128Mi' } } }] },
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test(
  `HA under churn: ${TOTAL} pods, the leader SIGKILLed ${KILLS} times; no duplicate, orphan, lost or stuck pod`,
  { timeout: 600_000 },
  async (t) => {
    const nodeName = uniqueNodeName('ha-churn');
    const lease = await leaseNamespace(t);
    const leaseName = `${nodeName}-leader`;
    const ns = await freshNamespace(t, 'ha-churn');
    const args = ['--provider', 'aci'];
    const replicas: Replica[] = [await startReplica(t, nodeName, lease, args)];
    await waitFor('the first replica to lead', () => replicas[0]?.isLeaderRunning(), { timeoutMs: 60_000 });
    replicas.push(await startReplica(t, nodeName, lease, args));
    await waitFor('the node Ready', async () => {
      const n = await core().readNode({ name: nodeName });
      return n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    });
    const ready = watchNodeReady(nodeName);

    // The churn: creates at a steady pace, each deleted LIFE_MS later unless it is one of the kept.
    const names = Array.from({ length: TOTAL }, (_, i) => `c-${i}`);
    const kept = new Set(names.slice(TOTAL - KEPT));
    const errors: string[] = [];
    const deletes: Array<Promise<void>> = [];
    const churn = (async () => {
      for (const [i, n] of names.entries()) {
        await core()
          .createNamespacedPod({ namespace: ns, body: pod(nodeName, n) })
          .catch((e: unknown) => errors.push(`create ${n}: ${String(e)}`));
        if (!kept.has(n)) {
          deletes.push(
            sleep(LIFE_MS).then(() =>
              core()
                .deleteNamespacedPod({ name: n, namespace: ns })
                .then(
                  () => undefined,
                  (e: unknown) => void errors.push(`delete ${n}: ${String(e)}`),
                ),
            ),
          );
        }
        if ((i + 1) % CREATES_PER_SECOND === 0) await sleep(1_000);
      }
      await Promise.all(deletes);
    })();

    // The kills: each at a random moment after the previous failover finished, always the leader.
    const failoversS: number[] = [];
    for (let k = 0; k < KILLS; k++) {
      await sleep(3_000 + Math.random() * 12_000);
      const holder = await leaseHolder(lease.namespace, leaseName);
      const li = replicas.findIndex((r) => r.identity() === holder && r.isLeaderRunning());
      assert.ok(li >= 0, `the lease holder ${holder} is one of the replicas, leading`);
      const leader = replicas[li] as Replica;
      const follower = replicas[1 - li] as Replica;
      const killedAt = Date.now();
      leader.handle.proc.kill('SIGKILL');
      await leader.handle.exited;
      // Its Deployment would start it again: it comes back as a follower.
      const restarted = restartReplica(leader);
      await waitFor(`failover ${k + 1}: the follower to run the node`, () => follower.isLeaderRunning(), {
        timeoutMs: 60_000,
        intervalMs: 50,
      });
      failoversS.push((Date.now() - killedAt) / 1000);
      replicas[li] = await restarted;
      assert.ok(!replicas[li]?.isLeaderRunning(), 'the restarted replica follows');
    }
    await churn;
    assert.deepEqual(errors, [], 'every create and delete was accepted');

    // Settled: the kept pods Running, every other pod gone.
    await waitFor(
      `the ${KEPT} kept pods Running and the ${TOTAL - KEPT} others gone`,
      async () => {
        const pods = (await core().listNamespacedPod({ namespace: ns })).items;
        return pods.length === KEPT && pods.every((p) => p.status?.phase === 'Running');
      },
      { timeoutMs: 240_000, intervalMs: 1_000 },
    );
    const { longestNotReadyMs, samples } = ready.stop();
    const pods = (await core().listNamespacedPod({ namespace: ns })).items;
    const groups = (await aci.inspector.arm.listGroups()).filter((g) => g.tags?.[ACI_TAGS.nodeName] === nodeName);
    const uids = new Set(pods.map((p) => p.metadata?.uid));
    const perPod = new Map<string, number>();
    for (const g of groups) {
      const k = `${g.tags?.[ACI_TAGS.namespace]}/${g.tags?.[ACI_TAGS.podName]}`;
      perPod.set(k, (perPod.get(k) ?? 0) + 1);
    }
    const duplicates = [...perPod.values()].filter((n) => n > 1).length;
    const orphans = groups.filter((g) => !uids.has(g.tags?.[ACI_TAGS.podUid])).length;
    const groupUids = new Set(groups.map((g) => g.tags?.[ACI_TAGS.podUid]));
    const lost = pods.filter((p) => !groupUids.has(p.metadata?.uid) || p.status?.phase !== 'Running').length;
    const stats = aci.emu.stats();
    t.diagnostic(
      `HA churn: ${TOTAL} pods (${TOTAL - KEPT} deleted during the churn), ${KILLS} leader SIGKILLs; failovers ${failoversS
        .map((s) => `${s.toFixed(1)} s`)
        .join(', ')}; longest NotReady ${(longestNotReadyMs / 1000).toFixed(1)} s (${samples} samples); ` +
        `duplicates ${duplicates}, orphans ${orphans}, lost ${lost}; ARM ${JSON.stringify(stats.callsByOperation)}`,
    );
    assert.equal(duplicates, 0, 'no pod has two groups');
    assert.equal(orphans, 0, 'no group without its pod');
    assert.equal(lost, 0, 'every kept pod runs in its group');
    assert.equal(groups.length, KEPT);
    assert.ok(longestNotReadyMs <= 20_000, `the node was NotReady for ${longestNotReadyMs} ms at a stretch`);
    for (const s of failoversS) assert.ok(s < 15, `a failover took ${s.toFixed(1)} s`);

    // And the end of the churn: everything deleted, nothing left behind.
    await Promise.all([...kept].map((n) => core().deleteNamespacedPod({ name: n, namespace: ns })));
    await waitFor(
      'no pod left (none stuck)',
      async () => (await core().listNamespacedPod({ namespace: ns })).items.length === 0,
      {
        timeoutMs: 180_000,
        intervalMs: 1_000,
      },
    );
    const left = (await aci.inspector.arm.listGroups()).filter((g) => g.tags?.[ACI_TAGS.nodeName] === nodeName);
    assert.equal(left.length, 0, 'no orphan group');
  },
);
