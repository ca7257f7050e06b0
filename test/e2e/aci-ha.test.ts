/**
 * Two connector replicas for one node (--leader-elect) with the ACI provider, against the real
 * control plane and the emulator: a paused leader that wakes after its lease was taken writes
 * nothing, and a stopped leader hands over at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { ACI_TAGS } from '../../src/providers/aci/index.js';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, uniqueNodeName } from './connector-process.js';
import { leaseHolder, leaseNamespace, startReplica } from './ha-support.js';

const RG = `ha-${Math.random().toString(36).slice(2, 8)}`;

// ACI's creation and deletion windows are lifted (useEmulatorForFile's default, the connector's too):
// the fence is under test here, not ACI's windows.
const aci = useEmulatorForFile(RG, { simulated: { pullMs: 50, startMs: 50 } });

async function groupsOf(node: string) {
  return (await aci.inspector.arm.listGroups()).filter((g) => g.tags?.[ACI_TAGS.nodeName] === node);
}

/** ARM calls that change something (everything but the GETs: lists, gets, logs, usage, metrics). */
function armWrites(): Record<string, number> {
  return Object.fromEntries(
    Object.entries(aci.emu.stats().callsByOperation).filter(([op]) => !/_(Get|List\w*)$/.test(op)),
  );
}

function pod(node: string, name: string): V1Pod {
  return boundPod(node, name, {
    spec: { containers: [{ name: 'app', image: 'nginx', resources: { requests: { cpu: '100m', memory: '128Mi' } } }] },
  });
}

/** What a status or Event write would change: every pod's resourceVersion, and the Events. */
async function apiSnapshot(ns: string): Promise<string> {
  const pods = (await core().listNamespacedPod({ namespace: ns })).items
    .map((p) => `${p.metadata?.name}@${p.metadata?.resourceVersion}`)
    .sort();
  const events = (await core().listNamespacedEvent({ namespace: ns })).items
    .map((e) => `${e.metadata?.name}@${e.metadata?.resourceVersion}`)
    .sort();
  return JSON.stringify({ pods, events });
}

async function runningNames(ns: string): Promise<string[]> {
  return (await core().listNamespacedPod({ namespace: ns })).items
    .filter((p) => p.status?.phase === 'Running' && !p.metadata?.deletionTimestamp)
    .map((p) => p.metadata?.name ?? '')
    .sort();
}

test(
  'split brain: a leader paused (SIGSTOP) until its lease was taken wakes to no ARM write and no status write',
  { timeout: 300_000 },
  async (t) => {
    const nodeName = uniqueNodeName('ha-sb');
    const lease = await leaseNamespace(t);
    const leaseName = `${nodeName}-leader`;
    const ns = await freshNamespace(t, 'ha-sb');
    const a = await startReplica(t, nodeName, lease, ['--provider', 'aci']);
    await waitFor('a to lead', () => a.isLeaderRunning(), { timeoutMs: 60_000 });
    const b = await startReplica(t, nodeName, lease, ['--provider', 'aci']);
    assert.equal(await leaseHolder(lease.namespace, leaseName), a.identity(), 'a holds the lease, b follows');
    assert.ok(!b.isLeaderRunning());

    for (const n of ['p-0', 'p-1', 'p-2', 'p-3'])
      await core().createNamespacedPod({ namespace: ns, body: pod(nodeName, n) });
    await waitFor('4 pods Running (through a)', async () => (await runningNames(ns)).length === 4, {
      timeoutMs: 120_000,
    });

    a.handle.proc.kill('SIGSTOP');
    // Work that a would act on when it wakes: its watch holds these events, undelivered.
    for (const n of ['p-4', 'p-5', 'p-6']) await core().createNamespacedPod({ namespace: ns, body: pod(nodeName, n) });
    await core().deleteNamespacedPod({ name: 'p-0', namespace: ns });

    await waitFor('b to take the lease', async () => (await leaseHolder(lease.namespace, leaseName)) === b.identity(), {
      timeoutMs: 60_000,
    });
    await waitFor('b to run the node', () => b.isLeaderRunning(), { timeoutMs: 60_000 });
    const want = ['p-1', 'p-2', 'p-3', 'p-4', 'p-5', 'p-6'];
    await waitFor(
      'b to run p-1..p-6, remove p-0, and hold one group per pod',
      async () =>
        JSON.stringify(await runningNames(ns)) === JSON.stringify(want) &&
        (await core().listNamespacedPod({ namespace: ns })).items.length === 6 &&
        (await groupsOf(nodeName)).length === 6,
      { timeoutMs: 120_000 },
    );

    // Quiet first (b has nothing left to do), so that anything written after a wakes is a's.
    let before = '';
    await waitFor(
      'no ARM write and no pod or Event change for 3 s',
      async () => {
        aci.emu.resetStats();
        const snap = await apiSnapshot(ns);
        await new Promise((r) => setTimeout(r, 3_000));
        const quiet = Object.keys(armWrites()).length === 0 && (await apiSnapshot(ns)) === snap;
        before = snap;
        return quiet;
      },
      { timeoutMs: 90_000, intervalMs: 0 },
    );
    aci.emu.resetStats();

    a.handle.proc.kill('SIGCONT');
    // The positive signal: a finds itself past its deadline and exits by itself.
    const exit = await Promise.race([
      a.handle.exited,
      new Promise<undefined>((r) => setTimeout(() => r(undefined), 30_000)),
    ]);
    assert.ok(exit, `a exited after waking:\n${a.handle.output().slice(-3000)}`);
    assert.equal(exit.code, 3, 'exit code 3: no longer the leader');
    assert.match(a.handle.output(), /"msg":"lost the leader lease"/);
    assert.match(a.handle.output(), /no longer the leader; exiting so that nothing more is written/);
    // Anything a had queued would have gone out by now; b, quiet, writes nothing either.
    await new Promise((r) => setTimeout(r, 2_000));
    const writes = armWrites();
    const reads = aci.emu.stats().callsByOperation;
    t.diagnostic(`after SIGCONT: ARM writes ${JSON.stringify(writes)}; all ARM calls ${JSON.stringify(reads)}`);
    assert.deepEqual(writes, {}, 'no ARM write after a woke');
    assert.equal(await apiSnapshot(ns), before, 'no pod status, pod delete or Event written after a woke');
    assert.equal(await leaseHolder(lease.namespace, leaseName), b.identity(), 'b still leads');
    assert.deepEqual(await runningNames(ns), want);
    assert.equal((await groupsOf(nodeName)).length, 6, 'no group created or deleted twice');
    assert.equal(b.handle.proc.exitCode, null, 'b keeps running');
  },
);

test(
  'a leader stopped with SIGTERM hands the lease over: the follower leads within seconds',
  { timeout: 180_000 },
  async (t) => {
    const nodeName = uniqueNodeName('ha-term');
    const lease = await leaseNamespace(t);
    const leaseName = `${nodeName}-leader`;
    const ns = await freshNamespace(t, 'ha-term');
    const a = await startReplica(t, nodeName, lease, ['--provider', 'aci']);
    await waitFor('a to lead', () => a.isLeaderRunning(), { timeoutMs: 60_000 });
    const b = await startReplica(t, nodeName, lease, ['--provider', 'aci']);
    await core().createNamespacedPod({ namespace: ns, body: pod(nodeName, 'p') });
    await waitFor('p Running', async () => (await runningNames(ns)).length === 1, { timeoutMs: 60_000 });

    const stoppedAt = Date.now();
    a.handle.proc.kill('SIGTERM');
    const exit = await a.handle.exited;
    assert.equal(exit.code, 0);
    assert.match(a.handle.output(), /"msg":"released the leader lease"/);
    assert.notEqual(
      await leaseHolder(lease.namespace, leaseName),
      a.identity(),
      'a gave the lease back before exiting',
    );
    await waitFor('b to run the node', () => b.isLeaderRunning(), { timeoutMs: 30_000, intervalMs: 50 });
    const takeoverS = (Date.now() - stoppedAt) / 1000;
    t.diagnostic(`takeover after SIGTERM: ${takeoverS.toFixed(1)} s (lease duration 6 s, retry period 1 s)`);
    assert.equal(await leaseHolder(lease.namespace, leaseName), b.identity());
    // b adopted the running pod: still one group, the pod still Running.
    await core().createNamespacedPod({ namespace: ns, body: pod(nodeName, 'q') });
    await waitFor('q Running through b', async () => (await runningNames(ns)).length === 2, { timeoutMs: 60_000 });
    assert.equal((await groupsOf(nodeName)).length, 2);
  },
);
