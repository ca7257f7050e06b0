/**
 * The connector with the ACI provider under ARM's limits, faults and a restart,
 * against the real control plane and the emulator (simulated runtime).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { ACI_TAGS } from '../../src/providers/aci/index.js';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector, uniqueNodeName, type ConnectorHandle } from './connector-process.js';

const RG = `scale-${Math.random().toString(36).slice(2, 8)}`;

// ACI's creation and deletion windows are lifted (useEmulatorForFile's default), and the group quota
// (ACI's default is 100 per region) is raised to hold the 500 pods at once: ARM's buckets are what
// is under test here; the windows under load are aci-real-limits.test's.
const aci = useEmulatorForFile(RG, { simulated: { pullMs: 50, startMs: 50 }, quota: { containerGroups: 1000 } });

async function groupsOf(node: string) {
  return (await aci.inspector.arm.listGroups()).filter((g) => g.tags?.[ACI_TAGS.nodeName] === node);
}

async function runningCount(ns: string): Promise<number> {
  const list = await core().listNamespacedPod({ namespace: ns });
  return list.items.filter((p) => p.status?.phase === 'Running').length;
}

async function armCalls(c: ConnectorHandle): Promise<Record<string, number>> {
  const res = await fetch(`http://127.0.0.1:${c.metricsPort()}/metrics`);
  const out: Record<string, number> = {};
  for (const m of (await res.text()).matchAll(
    /^aci_connector_arm_requests_total\{operation="([^"]+)",result="([^"]+)"\} (\d+)/gm,
  )) {
    out[`${m[1]} ${m[2]}`] = Number(m[3]);
  }
  return out;
}

function pod(node: string, name: string): V1Pod {
  return boundPod(node, name, {
    spec: { containers: [{ name: 'app', image: 'nginx', resources: { requests: { cpu: '100m', memory: '128Mi' } } }] },
  });
}

test(
  '500 pods at once under ARM limits: all Running, one PUT and one DELETE each, calls within budget',
  { timeout: 900_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'aci-500');
    const c = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    aci.emu.resetStats();
    const started = Date.now();
    const names = Array.from({ length: 500 }, (_, i) => `p-${i}`);
    for (let i = 0; i < names.length; i += 50) {
      await Promise.all(
        names.slice(i, i + 50).map((n) => core().createNamespacedPod({ namespace: ns, body: pod(c.nodeName, n) })),
      );
    }
    await waitFor('500 pods Running', async () => (await runningCount(ns)) === 500, {
      timeoutMs: 600_000,
      intervalMs: 2_000,
    });
    const elapsedS = (Date.now() - started) / 1000;
    const stats = aci.emu.stats();
    const calls = await armCalls(c);
    t.diagnostic(
      `500 pods Running in ${elapsedS.toFixed(1)} s; emulator saw ${JSON.stringify(stats.callsByOperation)}; 429s sent: ${stats.throttled}; connector counted ${JSON.stringify(calls)}`,
    );
    const putOutcomes = Object.entries(calls).filter(([k]) => k.startsWith('containerGroups.createOrUpdate '));
    assert.deepEqual(
      putOutcomes.filter(([k]) => !/ (success|429)$/.test(k)),
      [],
      'PUTs only ever succeeded or were throttled',
    );
    assert.ok(
      (stats.callsByOperation['ContainerGroups_CreateOrUpdate'] ?? 0) <= 500 + stats.throttled,
      'no PUT beyond one per pod and the throttled ones',
    );
    assert.equal(calls['containerGroups.createOrUpdate success'], 500, 'one successful PUT per pod');
    const reads = Object.entries(calls)
      .filter(([k]) => /\.(get|listByResourceGroup|listUsage) /.test(k))
      .reduce((s, [, v]) => s + v, 0);
    assert.ok(reads <= 250 + 25 * elapsedS, `${reads} reads in ${elapsedS.toFixed(0)} s exceed ARM's read budget`);
    assert.equal((await groupsOf(c.nodeName)).length, 500);

    await Promise.all(names.map((n) => core().deleteNamespacedPod({ name: n, namespace: ns })));
    await waitFor('no pod left', async () => (await core().listNamespacedPod({ namespace: ns })).items.length === 0, {
      timeoutMs: 600_000,
      intervalMs: 2_000,
    });
    assert.equal((await groupsOf(c.nodeName)).length, 0, 'no group left');
    assert.equal((await armCalls(c))['containerGroups.delete success'], 500, 'one DELETE per pod');
  },
);

test(
  '503s, lost PUT responses and a SIGKILL mid-flight: no duplicates, no orphans, no stuck pods',
  { timeout: 600_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'aci-faults');
    const nodeName = uniqueNodeName('aci-faults');
    aci.emu.resetStats();
    aci.emu.setFaults({ unavailableRate: 0.15, lostPutResponseRate: 0.3 });
    try {
      const first = await startConnector(t, { nodeName, extraArgs: ['--provider', 'aci'] });
      const names = Array.from({ length: 60 }, (_, i) => `f-${i}`);
      await Promise.all(names.map((n) => core().createNamespacedPod({ namespace: ns, body: pod(nodeName, n) })));
      await waitFor('some groups created', async () => (await groupsOf(nodeName)).length >= 10, { timeoutMs: 120_000 });
      first.proc.kill('SIGKILL');
      await first.exited;
      const second = await first.restart();
      await waitFor('60 pods Running', async () => (await runningCount(ns)) === 60, {
        timeoutMs: 400_000,
        intervalMs: 1_000,
      });
      const groups = await groupsOf(nodeName);
      assert.equal(groups.length, 60, 'exactly one group per pod');
      const pods = (await core().listNamespacedPod({ namespace: ns })).items;
      assert.deepEqual(
        new Set(groups.map((g) => g.tags?.[ACI_TAGS.podUid])),
        new Set(pods.map((p) => p.metadata?.uid)),
      );
      t.diagnostic(`faults: ${JSON.stringify(aci.emu.stats())}`);
      assert.ok(aci.emu.stats().lostResponses > 0, 'lost responses were exercised');

      await Promise.all(names.map((n) => core().deleteNamespacedPod({ name: n, namespace: ns })));
      await waitFor('no pod left', async () => (await core().listNamespacedPod({ namespace: ns })).items.length === 0, {
        timeoutMs: 300_000,
        intervalMs: 1_000,
      });
      assert.equal((await groupsOf(nodeName)).length, 0, 'no orphan');
      assert.ok(second.proc.exitCode === null, 'the restarted connector is still running');
    } finally {
      aci.emu.setFaults({});
    }
  },
);
