/**
 * One node over two ACI targets (ACI_TARGETS), through the real control plane and the emulator
 * (simulated runtime): pods spread over both subscriptions, so they start in about half the time
 * one subscription's creation window allows; the node's capacity is the sum of both quotas; a
 * pod that names a target lands in that target's subscription.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import {
  ACI_TAGS,
  createAciProvider,
  loadAciConfig,
  TARGET_ANNOTATION,
  type AciProvider,
} from '../../src/providers/aci/index.js';
import { parseQuantity } from '../../src/common/quantity.js';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector, type ConnectorHandle } from './connector-process.js';

const RG = 'targets';
const SUB_ONE = '00000000-0000-4000-8000-00000000000f';
const SUB_A = '00000000-0000-4000-8000-00000000000a';
const SUB_B = '00000000-0000-4000-8000-00000000000b';
const PODS = 400;
// ACI's real creation window (100 per 5 minutes per subscription and region) would make this
// ~20 minutes for one target and ~10 for two. The windows are shrunk, for every subscription
// alike, to 50 creations per 10 s, which keeps the shape (the window, not ARM's write budget,
// bounds the rate: 5 creations/s against 10 writes/s) while one target takes ~80 s and two ~40 s.
const WINDOW = { count: 50, windowSeconds: 10 };
// Quotas of their own per subscription, so that the node's capacity shows both.
const QUOTA_A = 450;
const QUOTA_B = 350;

// The connector paces its creates under the same windows (ACI_CREATION_WINDOWS), and placement assumes them.
const PACED = { ACI_CREATION_WINDOWS: `${WINDOW.count}/${WINDOW.windowSeconds}` };

const aci = useEmulatorForFile(RG, {
  limits: { creations: WINDOW },
  // Quota enough for 400 groups in the one-target subscription; a and b have their own below.
  quota: { containerGroups: 5000, cores: 10_000 },
  scopes: [
    { subscriptionId: SUB_A, quota: { containerGroups: QUOTA_A } },
    { subscriptionId: SUB_B, quota: { containerGroups: QUOTA_B } },
  ],
  simulated: { pullMs: 20, startMs: 20 },
});

function inspector(subscriptionId: string): AciProvider {
  return createAciProvider({
    config: loadAciConfig({ ...aci.env, AZURE_SUBSCRIPTION_ID: subscriptionId }),
    clusterId: 'inspector',
    nodeName: 'inspector',
  });
}

function pod(node: string, name: string, annotations?: Record<string, string>): V1Pod {
  return boundPod(node, name, {
    ...(annotations ? { annotations } : {}),
    spec: {
      automountServiceAccountToken: false,
      containers: [{ name: 'app', image: 'nginx', resources: { requests: { cpu: '100m', memory: '128Mi' } } }],
    },
  });
}

/** Creates PODS pods on the node and returns the seconds until every one is Running. */
async function startAll(c: ConnectorHandle, ns: string): Promise<number> {
  const started = Date.now();
  const names = Array.from({ length: PODS }, (_, i) => `p-${i}`);
  for (let i = 0; i < names.length; i += 50) {
    await Promise.all(
      names.slice(i, i + 50).map((n) => core().createNamespacedPod({ namespace: ns, body: pod(c.nodeName, n) })),
    );
  }
  await waitFor(
    `${PODS} pods Running on ${c.nodeName}`,
    async () =>
      (await core().listNamespacedPod({ namespace: ns })).items.filter((p) => p.status?.phase === 'Running').length ===
      PODS,
    { timeoutMs: 420_000, intervalMs: 1_000 },
  );
  return (Date.now() - started) / 1000;
}

async function ourGroups(p: AciProvider, node: string) {
  return (await p.arm.listGroups()).filter((g) => g.tags?.[ACI_TAGS.nodeName] === node);
}

test(
  'two targets: 400 pods start in about half the time of one, the node capacity is both quotas, a pod naming target b lands in b',
  { timeout: 900_000 },
  async (t) => {
    const inspectors = [SUB_ONE, SUB_A, SUB_B].map(inspector);
    t.after(() => Promise.all(inspectors.map((i) => i.close())));
    const [, inA, inB] = inspectors as [AciProvider, AciProvider, AciProvider];

    // One target: the single-target configuration, unchanged.
    const ns1 = await freshNamespace(t, 'aci-one-target');
    const one = await startConnector(t, {
      extraArgs: ['--provider', 'aci'],
      env: { ...PACED, AZURE_SUBSCRIPTION_ID: SUB_ONE },
    });
    const oneS = await startAll(one, ns1);
    t.diagnostic(`${PODS} pods Running with one target in ${oneS.toFixed(1)} s`);
    one.proc.kill('SIGKILL');
    await one.exited;
    // Its pods go at once (no kubelet is left to finish them), so they cost the next run nothing.
    await core().deleteCollectionNamespacedPod({ namespace: ns1, gracePeriodSeconds: 0 });

    // Two targets in two subscriptions, the rest (resource group, credential, endpoint) inherited.
    const targets = [
      { name: 'a', subscriptionId: SUB_A },
      { name: 'b', subscriptionId: SUB_B },
    ];
    const ns2 = await freshNamespace(t, 'aci-two-targets');
    const two = await startConnector(t, {
      extraArgs: ['--provider', 'aci'],
      env: { ...PACED, ACI_TARGETS: JSON.stringify(targets) },
    });
    const node = await waitFor('the two-target node with its capacity', async () => {
      const n = await core().readNode({ name: two.nodeName });
      return n.status?.capacity?.['pods'] ? n : undefined;
    });
    const capacity = node.status?.capacity ?? {};
    t.diagnostic(`two-target node capacity ${JSON.stringify(capacity)}`);
    assert.equal(parseQuantity(capacity['pods'] ?? '0'), QUOTA_A + QUOTA_B, 'pods: the sum of both quotas');
    // The API server writes quantities canonically (20000 → 20k).
    assert.equal(parseQuantity(capacity['cpu'] ?? '0'), 10_000 + 10_000, 'cpu: the sum of both core quotas');

    const twoS = await startAll(two, ns2);
    const [groupsA, groupsB] = [await ourGroups(inA, two.nodeName), await ourGroups(inB, two.nodeName)];
    const ratio = twoS / oneS;
    t.diagnostic(
      `${PODS} pods Running: one target ${oneS.toFixed(1)} s, two targets ${twoS.toFixed(1)} s (ratio ${ratio.toFixed(2)}); groups in a ${groupsA.length}, in b ${groupsB.length}; emulator 429s ${aci.emu.stats().throttled}`,
    );
    assert.ok(ratio <= 0.7, `two targets finish clearly faster than one (ratio ${ratio.toFixed(2)})`);
    const uids = [...groupsA, ...groupsB].map((g) => g.tags?.[ACI_TAGS.podUid]);
    assert.equal(uids.length, PODS, 'one group per pod over both targets');
    assert.equal(new Set(uids).size, PODS, 'no pod has a group in both');
    assert.ok(groupsA.length >= PODS / 4 && groupsB.length >= PODS / 4, 'both targets took a share');

    await core().createNamespacedPod({
      namespace: ns2,
      body: pod(two.nodeName, 'for-b', { [TARGET_ANNOTATION]: 'b' }),
    });
    const forB = await waitFor('the pod for b Running', async () => {
      const p = await core().readNamespacedPod({ name: 'for-b', namespace: ns2 });
      return p.status?.phase === 'Running' ? p : undefined;
    });
    const uid = forB.metadata?.uid;
    assert.ok(
      (await ourGroups(inB, two.nodeName)).some((g) => g.tags?.[ACI_TAGS.podUid] === uid),
      'its group is in b',
    );
    assert.ok(!(await ourGroups(inA, two.nodeName)).some((g) => g.tags?.[ACI_TAGS.podUid] === uid), 'and not in a');
  },
);
