/**
 * The ACI provider under the emulator's ARM limits (reads 250 + 25/s, writes 200 + 10/s):
 * 500 pods at once, and injected 503s / lost PUT responses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerGroupName, ACI_TAGS } from '../../src/providers/aci/index.js';
import { createLikeCore, harness, key, podRef, testPod, waitFor } from './aci-provider-fixtures.js';
import type { ArmAttempt } from '../../src/providers/aci/arm/arm-caller.js';

/**
 * ACI's own creation and deletion windows (100 per 5 minutes, 300 per hour) would make 500
 * creations take over an hour, and its regional quota (100 groups, 100 cores) would hold only
 * 100 of them: both are lifted because only ARM's buckets are under test here (the windows are
 * aci-real-limits.test's).
 */
const creations = { count: 100_000, windowSeconds: 60 };
const deletions = creations;
const quota = { containerGroups: 10_000, cores: 10_000 };

function retriesHonourRetryAfter(attempts: ArmAttempt[]): number {
  const byCall = new Map<number, ArmAttempt[]>();
  for (const a of attempts) byCall.set(a.callId, [...(byCall.get(a.callId) ?? []), a]);
  let throttled = 0;
  for (const list of byCall.values()) {
    list.forEach((a, i) => {
      if (a.result !== '429') return;
      throttled++;
      const next = list[i + 1];
      if (next)
        assert.ok(
          next.startedAt >= a.retryNotBefore!,
          `${a.operation} retried ${a.retryNotBefore! - next.startedAt} ms before its Retry-After`,
        );
    });
  }
  return throttled;
}

test(
  '500 pods at once: all Running, one PUT each, Retry-After honoured, reads within budget, then no group left',
  { timeout: 600_000 },
  async (t) => {
    const h = await harness(
      { limits: { creations, deletions }, quota },
      { config: { listIntervalMs: 5_000, statusReadsPerSecond: 20 } },
    );
    try {
      const pods = Array.from({ length: 500 }, (_, i) => testPod(`load-${i}`));
      const started = Date.now();
      await Promise.all(pods.map((p) => createLikeCore(h, p)));
      await waitFor(
        'every pod Running',
        () => pods.every((p) => h.statuses.get(key(podRef(p)))?.phase === 'Running'),
        400_000,
      );
      const elapsedS = (Date.now() - started) / 1000;

      const puts = h.attempts.filter((a) => a.operation === 'containerGroups.createOrUpdate');
      const putOk = puts.filter((a) => a.result === 'success').length;
      assert.equal(putOk, 500, 'one successful PUT per pod');
      assert.equal(
        puts.filter((a) => a.result !== 'success' && a.result !== '429').length,
        0,
        'no PUT failed other than by throttling',
      );
      const throttled = retriesHonourRetryAfter(h.attempts);

      const reads = h.attempts.filter((a) => a.kind === 'read').length;
      const readBudget = 250 + 25 * elapsedS;
      assert.ok(
        reads <= readBudget,
        `${reads} reads in ${elapsedS.toFixed(1)} s exceed ARM's budget ${readBudget.toFixed(0)}`,
      );
      t.diagnostic(
        `500 pods Running in ${elapsedS.toFixed(1)} s; ARM calls: ${puts.length} PUT, ${reads} reads (budget ${readBudget.toFixed(0)}); 429s seen by the client: ${throttled}; emulator throttled: ${h.emu.stats().throttled}`,
      );

      const delStarted = Date.now();
      await Promise.all(pods.map((p) => h.provider.deletePod(p, 0)));
      const deletes = h.attempts.filter(
        (a) => a.operation === 'containerGroups.delete' && a.result === 'success',
      ).length;
      assert.equal(deletes, 500, 'one DELETE per pod');
      retriesHonourRetryAfter(h.attempts);
      const left = (await h.provider.arm.listGroups()).filter(
        (g) => g.tags?.[ACI_TAGS.clusterId] === 'cluster-under-test',
      );
      assert.equal(left.length, 0);
      t.diagnostic(`500 deletions in ${((Date.now() - delStarted) / 1000).toFixed(1)} s`);
    } finally {
      await h.close();
    }
  },
);

test('injected 503s and lost PUT responses: no duplicate, no orphan, no stuck pod', { timeout: 300_000 }, async (t) => {
  const h = await harness({
    limits: { creations, deletions },
    quota,
    faults: { unavailableRate: 0.15, lostPutResponseRate: 0.3 },
  });
  try {
    const pods = Array.from({ length: 40 }, (_, i) => testPod(`faulty-${i}`));
    await Promise.all(pods.map((p) => createLikeCore(h, p)));
    await waitFor(
      'every pod Running',
      () => pods.every((p) => h.statuses.get(key(podRef(p)))?.phase === 'Running'),
      240_000,
    );

    const expected = new Set(
      pods.map((p) =>
        containerGroupName({
          clusterId: 'cluster-under-test',
          namespace: 'default',
          podName: p.metadata!.name!,
          podUid: p.metadata!.uid!,
        }),
      ),
    );
    const ours = (await h.provider.arm.listGroups()).filter(
      (g) => g.tags?.[ACI_TAGS.clusterId] === 'cluster-under-test',
    );
    assert.equal(ours.length, pods.length, 'exactly one group per pod');
    assert.deepEqual(new Set(ours.map((g) => g.name)), expected);
    const uids = ours.map((g) => g.tags?.[ACI_TAGS.podUid]);
    assert.equal(new Set(uids).size, pods.length);

    const stats = h.emu.stats();
    assert.ok(stats.lostResponses > 0, 'the fault was exercised');
    const puts = h.attempts.filter((a) => a.operation === 'containerGroups.createOrUpdate');
    // A PUT is only repeated after a 503 (the group was not created); a lost response is settled by a GET.
    const repeatedAfterLoss = puts.filter((a) => a.result === 'network').length;
    t.diagnostic(
      `lost PUT responses: ${stats.lostResponses}, injected faults: ${stats.faultsInjected}, PUT attempts: ${puts.length} (network failures ${repeatedAfterLoss})`,
    );
    assert.equal(
      puts.filter((a) => a.result === 'success').length + repeatedAfterLoss,
      pods.length,
      'every pod: one successful PUT, or one PUT whose response was lost',
    );

    await Promise.all(pods.map((p) => h.provider.deletePod(p, 0).catch(() => h.provider.deletePod(p, 0))));
    const left = (await h.provider.arm.listGroups()).filter(
      (g) => g.tags?.[ACI_TAGS.clusterId] === 'cluster-under-test',
    );
    assert.equal(left.length, 0, 'no orphan');
  } finally {
    await h.close();
  }
});
