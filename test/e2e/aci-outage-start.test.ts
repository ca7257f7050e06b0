/**
 * Outage at start (issue 14): ARM answers 503 to everything from before the connector starts
 * until about 60 s later. The connector stays up, its node is NotReady with a reason naming
 * ARM's problem while it lasts, nothing is created before ARM answers, and once it does the
 * connector reconciles by itself: the node goes Ready and a pod created meanwhile runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type * as k8s from '@kubernetes/client-node';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';

const aci = useEmulatorForFile('outage-start', { simulated: { pullMs: 20, startMs: 20 } });

const OUTAGE_MS = 60_000;

function ready(n: k8s.V1Node | undefined): k8s.V1NodeCondition | undefined {
  return n?.status?.conditions?.find((c) => c.type === 'Ready');
}

async function readNode(name: string): Promise<k8s.V1Node | undefined> {
  try {
    return await core().readNode({ name });
  } catch {
    return undefined;
  }
}

test(
  'ARM answering 503 for 60 s at start: the connector stays up, the node is NotReady with the reason, then recovers by itself',
  { timeout: 300_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'aci-outage');
    aci.emu.setFaults({ unavailableRate: 1 });
    const outageStart = Date.now();
    t.after(() => aci.emu.setFaults({}));
    const c = await startConnector(t, { extraArgs: ['--provider', 'aci'], waitRunning: false });
    let exited: string | undefined;
    void c.exited.then((e) => (exited = `connector exited (code ${e.code}, signal ${e.signal}):\n${c.output()}`));

    // The node registers NotReady, with a reason that names ARM's problem.
    const down = await waitFor(
      'the node registered NotReady with the reason',
      async () => {
        if (exited) throw new Error(exited);
        const r = ready(await readNode(c.nodeName));
        return r?.status === 'False' && /AciUnreachable|ProviderUnavailable/.test(r.reason ?? '') ? r : undefined;
      },
      // Each ARM call retries a few times before the connector sees it fail: allow it time.
      { timeoutMs: 120_000 },
    );
    assert.match(down.message ?? '', /not reachable|could not be listed/, down.message);
    assert.match(down.message ?? '', /503|ServiceUnavailable|unavailable/i, down.message);

    // A pod bound meanwhile waits: nothing reaches ACI before ARM answers a list.
    await core().createNamespacedPod({ namespace: ns, body: boundPod(c.nodeName, 'meanwhile') });

    // While the outage lasts (at least 60 s from before the start, and until the pod controller's first
    // list has failed at least once: the ARM client's own retries can make that late), the node is never
    // Ready and the process stays up.
    const reasons = new Set<string>();
    const listFailed = (): boolean => /listing the provider's pods failed; will retry/.test(c.output());
    do {
      if (exited) assert.fail(exited);
      const r = ready(await readNode(c.nodeName));
      assert.notEqual(r?.status, 'True', `the node went Ready during the outage: ${JSON.stringify(r)}`);
      if (r?.reason) reasons.add(r.reason);
      assert.equal(aci.emu.stats().groups, 0, 'no group created during the outage');
      await new Promise((res) => setTimeout(res, 2_000));
    } while ((Date.now() - outageStart < OUTAGE_MS || !listFailed()) && Date.now() - outageStart < 3 * OUTAGE_MS);
    assert.ok(aci.emu.stats().faultsInjected > 5, 'the emulator did answer 503s');
    assert.ok(!c.output().includes('"msg":"pod controller running"'), 'the pods were not reconciled during the outage');
    t.diagnostic(`Ready reasons during the outage: ${[...reasons].join(', ')}`);

    // ARM answers again: the connector reconciles by itself.
    aci.emu.setFaults({});
    const recoveredAt = Date.now();
    await waitFor(
      'the node Ready after the outage',
      async () => {
        if (exited) throw new Error(exited);
        return ready(await readNode(c.nodeName))?.status === 'True';
      },
      { timeoutMs: 120_000 },
    );
    await waitFor(
      'the pod created meanwhile Running',
      async () => (await core().readNamespacedPod({ name: 'meanwhile', namespace: ns })).status?.phase === 'Running',
      { timeoutMs: 120_000 },
    );
    t.diagnostic(`recovered ${Math.round((Date.now() - recoveredAt) / 1000)} s after ARM answered again`);
    assert.equal(aci.emu.stats().groups, 1, 'one group, for the pod');
    assert.equal(exited, undefined, 'the connector stayed up');
    assert.match(c.output(), /listing the provider's pods failed; will retry/);
  },
);
