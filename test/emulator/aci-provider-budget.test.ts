/**
 * Status reads fit ARM's read budget (250 + 25/s) with 5,000 pods on the node.
 * The groups are seeded with throttling relaxed, then a fresh provider instance
 * (a restarted connector) watches them under ARM's real limits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createAciProvider, loadAciConfig, podToContainerGroup } from '../../src/providers/aci/index.js';
import { mapPool } from '../../src/common/pool.js';
import type { ArmAttempt } from '../../src/providers/aci/arm/arm-caller.js';
import { contextFor, envFor, harness, testPod, waitFor } from './aci-provider-fixtures.js';

const PODS = 5_000;
const WINDOW_MS = 30_000;

test(`${PODS} pods: the status machinery stays within ARM's read budget`, { timeout: 900_000 }, async (t) => {
  const relaxed = { capacity: 1_000_000, refillPerSecond: 1_000_000 };
  // Seeding 5,000 groups is not under test: ARM's buckets, ACI's creation windows and its regional
  // quota (100 groups) are lifted for it; the reads of the restarted provider are what is measured.
  const lifted = { count: 1_000_000, windowSeconds: 60 };
  const h = await harness(
    {
      limits: { write: relaxed, read: relaxed, creations: lifted, deletions: lifted },
      quota: { containerGroups: 100_000, cores: 100_000 },
    },
    { config: { limits: { readBucket: 1e6, readRefillPerSecond: 1e6, writeBucket: 1e6, writeRefillPerSecond: 1e6 } } },
  );
  try {
    const seedStart = Date.now();
    await mapPool(
      Array.from({ length: PODS }, (_, i) => i),
      64,
      async (i) => {
        const p = testPod(`budget-${i}`);
        p.metadata!.uid = randomUUID();
        const { name, group } = await podToContainerGroup(p, contextFor(h, p), {
          clusterId: 'cluster-under-test',
          nodeName: 'aci-connector',
          region: 'westus',
          defaults: { cpu: 0.1, memoryInGB: 0.1 },
          maximums: { cpu: 4, memoryInGB: 16 },
        });
        await h.provider.arm.createGroup(name, group);
      },
    );
    await h.provider.close();
    t.diagnostic(`seeded ${PODS} groups in ${((Date.now() - seedStart) / 1000).toFixed(1)} s`);

    // ARM's real limits from here on.
    h.emu.setLimits({ read: { capacity: 250, refillPerSecond: 25 }, write: { capacity: 200, refillPerSecond: 10 } });
    h.emu.resetThrottling();
    const before = h.emu.stats().throttled;

    const attempts: ArmAttempt[] = [];
    const pushed = new Set<string>();
    const provider = createAciProvider({
      config: loadAciConfig(envFor(h.emu)),
      clusterId: 'cluster-under-test',
      nodeName: 'aci-connector',
      onArmAttempt: (a) => attempts.push(a),
    });
    try {
      const started = Date.now();
      provider.onStatus((ref) => pushed.add(ref.uid));
      await new Promise((r) => setTimeout(r, WINDOW_MS));
      const elapsedS = (Date.now() - started) / 1000;
      const reads = attempts.filter((a) => a.kind === 'read');
      const lists = reads.filter((a) => a.operation === 'containerGroups.listByResourceGroup').length;
      const gets = reads.filter((a) => a.operation === 'containerGroups.get').length;
      const budget = 250 + 25 * elapsedS;
      t.diagnostic(
        `${elapsedS.toFixed(1)} s watching ${PODS} groups: ${reads.length} reads (${lists} list pages, ${gets} GETs; ${(reads.length / elapsedS).toFixed(1)}/s), ARM budget ${budget.toFixed(0)}; statuses pushed for ${pushed.size} pods; 429s: ${h.emu.stats().throttled - before}`,
      );
      assert.ok(reads.length <= budget, `${reads.length} reads exceed the budget ${budget.toFixed(0)}`);
      // The steady share is configurable (default 10 GETs/s) plus one paged list per 10 s: well under the 25/s refill.
      assert.ok(gets <= 20 + 10 * elapsedS + 1, `${gets} status GETs exceed the configured 10/s share`);
      assert.ok(lists >= Math.ceil(PODS / 100), 'the resource group was listed');
      assert.ok(pushed.size > 0, 'statuses flow while staying in budget');
      assert.equal(h.emu.stats().throttled - before, 0, 'no request was throttled');
      await waitFor('some Running status', () => pushed.size >= 100, 60_000);
    } finally {
      await provider.close();
    }
  } finally {
    await h.close();
  }
});
