/** The ACI provider against the emulator's simulated runtime: lifecycle, status, exits, vanished groups, quota, health. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { PodRejectedError, ProviderDeferredError, TransientProviderError } from '../../src/core/provider.js';
import { containerGroupName, createAciProvider, loadAciConfig } from '../../src/providers/aci/index.js';
import { createSimulatedRuntime } from '../../src/emulator/index.js';
import {
  contextFor,
  createLikeCore,
  envFor,
  harness,
  key,
  podRef,
  testPod,
  waitFor,
  type Harness,
} from './aci-provider-fixtures.js';

let h: Harness;
before(async () => {
  h = await harness();
});
after(async () => {
  await h?.close();
});

const groupNameOf = (p: ReturnType<typeof testPod>) =>
  containerGroupName({
    clusterId: 'cluster-under-test',
    namespace: p.metadata!.namespace!,
    podName: p.metadata!.name!,
    podUid: p.metadata!.uid!,
  });

test('create → Running with an IP pushed via onStatus, events recorded once; delete leaves no group', async () => {
  const p = testPod('web');
  await h.provider.createPod(p, contextFor(h, p));
  const s = await waitFor('Running', () => {
    const st = h.statuses.get(key(podRef(p)));
    return st?.phase === 'Running' && st.containerStatuses?.[0]?.ready ? st : undefined;
  });
  assert.match(s.podIP ?? '', /^127\./);
  assert.equal(s.containerStatuses?.[0]?.name, 'app');
  const evs = h.events.get(key(podRef(p))) ?? [];
  assert.ok(evs.length > 0, 'ACI events became pod events');
  const keys = evs.map((e) => `${e.reason}|${e.message}`);
  assert.equal(new Set(keys).size, keys.length, 'no event reported twice');

  const got = await h.provider.getPod(podRef(p));
  assert.equal(got?.status.phase, 'Running');
  const listed = await h.provider.listPods();
  assert.ok(listed.some((x) => x.ref.uid === p.metadata!.uid));

  // A second create of the same pod (a core retry) does not send a second PUT.
  const putsBefore = h.attempts.filter((a) => a.operation === 'containerGroups.createOrUpdate').length;
  await h.provider.createPod(p, contextFor(h, p));
  assert.equal(h.attempts.filter((a) => a.operation === 'containerGroups.createOrUpdate').length, putsBefore);

  await h.provider.deletePod(p, 30);
  assert.equal(await h.provider.arm.getGroup(groupNameOf(p)), undefined);
  await h.provider.deletePod(p, 30); // already gone: still fine
});

test('groups without our tags are never listed as pods', async () => {
  await h.provider.arm.createGroup('someone-elses-group', {
    location: 'westus',
    osType: 'Linux',
    containers: [{ name: 'c', image: 'nginx', resources: { requests: { cpu: 0.1, memoryInGB: 0.1 } } }],
  });
  const listed = await h.provider.listPods();
  assert.ok(listed.every((x) => x.ref.name !== 'someone-elses-group'));
  await h.provider.arm.deleteGroup('someone-elses-group');
});

for (const [policy, exitCode, expectPhase] of [
  ['Never', 0, 'Succeeded'],
  ['Never', 3, 'Failed'],
  ['OnFailure', 0, 'Succeeded'],
] as const) {
  test(`restartPolicy ${policy}, exit ${exitCode} → ${expectPhase} with the exit code`, async () => {
    const p = testPod(`exit-${policy.toLowerCase()}-${exitCode}`, {
      restartPolicy: policy,
      containers: [{ name: 'app', image: 'busybox', command: ['sh', '-c', `exit ${exitCode}`] }],
    });
    await h.provider.createPod(p, contextFor(h, p));
    const s = await waitFor(expectPhase, () => {
      const st = h.statuses.get(key(podRef(p)));
      return st?.phase === expectPhase ? st : undefined;
    });
    assert.equal(s.containerStatuses?.[0]?.state?.terminated?.exitCode, exitCode);
    assert.equal(s.containerStatuses?.[0]?.restartCount, 0);
    await h.provider.deletePod(p, 0);
  });
}

for (const [policy, exitCode] of [
  ['OnFailure', 2],
  ['Always', 0],
] as const) {
  test(`restartPolicy ${policy}, exit ${exitCode} → restarted, Running, lastState carries the exit code`, async () => {
    const p = testPod(`restart-${policy.toLowerCase()}`, {
      restartPolicy: policy,
      containers: [{ name: 'app', image: 'busybox', command: ['sh', '-c', `exit ${exitCode}`] }],
    });
    await h.provider.createPod(p, contextFor(h, p));
    const s = await waitFor('a restart', () => {
      const st = h.statuses.get(key(podRef(p)));
      return (st?.containerStatuses?.[0]?.restartCount ?? 0) >= 1 && st?.containerStatuses?.[0]?.lastState?.terminated
        ? st
        : undefined;
    });
    assert.ok(s.phase === 'Running' || s.phase === 'Pending', `phase ${s.phase}`);
    assert.equal(s.containerStatuses?.[0]?.lastState?.terminated?.exitCode, exitCode);
    await h.provider.deletePod(p, 0);
  });
}

test('a group deleted behind our back fails the pod with a reason and is not re-created', async () => {
  const p = testPod('vanishing');
  const ctx = contextFor(h, p);
  await h.provider.createPod(p, ctx);
  await waitFor('Running', () => h.statuses.get(key(podRef(p)))?.phase === 'Running');
  await h.provider.arm.deleteGroup(groupNameOf(p));
  const s = await waitFor('Failed', () => {
    const st = h.statuses.get(key(podRef(p)));
    return st?.phase === 'Failed' ? st : undefined;
  });
  assert.equal(s.reason, 'ProviderGroupVanished');
  await assert.rejects(
    h.provider.createPod(p, ctx),
    (e: unknown) => e instanceof PodRejectedError && e.reason === 'ProviderGroupVanished',
  );
  assert.equal(await h.provider.arm.getGroup(groupNameOf(p)), undefined);
});

test('an image that cannot be pulled fails the pod with the reason', async () => {
  const p = testPod('bad-image', { containers: [{ name: 'app', image: 'registry.invalid/does-not-exist:1' }] });
  await h.provider.createPod(p, contextFor(h, p));
  const s = await waitFor('Failed', () => {
    const st = h.statuses.get(key(podRef(p)));
    return st?.phase === 'Failed' ? st : undefined;
  });
  assert.equal(s.reason, 'ProviderFailed');
  assert.match(s.message ?? '', /manifest unknown|pull/i);
  await h.provider.deletePod(p, 0);
});

test('quota exhaustion keeps the pod waiting (transient QuotaExceeded) and it starts once capacity frees', async () => {
  const used = (await h.provider.arm.listUsage()).find((u) => u.name?.value === 'ContainerGroups')?.currentValue ?? 0;
  h.emu.setQuota({ containerGroups: used + 1 });
  try {
    const first = testPod('quota-a');
    await h.provider.createPod(first, contextFor(h, first));
    const second = testPod('quota-b');
    const ctx = contextFor(h, second);
    await assert.rejects(
      h.provider.createPod(second, ctx),
      (e: unknown) => e instanceof TransientProviderError && e.reason === 'QuotaExceeded',
    );
    // Held back locally: a retry right away does not reach ARM.
    const putsBefore = h.attempts.filter((a) => a.operation === 'containerGroups.createOrUpdate').length;
    await assert.rejects(h.provider.createPod(second, ctx), TransientProviderError);
    assert.equal(h.attempts.filter((a) => a.operation === 'containerGroups.createOrUpdate').length, putsBefore);
    await h.provider.deletePod(first, 0);
    await h.provider.createPod(second, ctx);
    await waitFor('Running', () => h.statuses.get(key(podRef(second)))?.phase === 'Running');
    await h.provider.deletePod(second, 0);
  } finally {
    h.emu.setQuota({ containerGroups: 100 });
  }
});

test('node capacity comes from the usages API', async () => {
  h.emu.setQuota({ containerGroups: 42 });
  try {
    const fresh = await harness({}, {});
    try {
      fresh.emu.setQuota({ containerGroups: 42 });
      const info = await fresh.provider.nodeInfo();
      assert.equal(info.capacity['pods'], '42');
      assert.equal(info.capacity['ephemeral-storage'], `${42 * 50}G`, 'about 50 GB of local disk per group');
      assert.equal(info.labels['topology.kubernetes.io/region'], 'westus');
      assert.equal(info.labels['topology.kubernetes.io/zone'], '0');
    } finally {
      await fresh.close();
    }
  } finally {
    h.emu.setQuota({ containerGroups: 100 });
  }
});

test('health: ok with the right credential; a wrong secret is not ok with a reason', async () => {
  assert.equal((await h.provider.health()).ok, true);
  const bad = await harness({}, { env: { AZURE_CLIENT_SECRET: 'wrong-secret' } });
  try {
    const health = await bad.provider.health();
    assert.equal(health.ok, false);
    assert.equal(health.reason, 'AzureCredentialInvalid');
    assert.ok(!health.message.includes('wrong-secret'));
  } finally {
    await bad.close();
  }
});

test('a DELETE answered 202 resolves only once the group is gone', async () => {
  // A runtime whose teardown takes longer than the emulator waits before answering 202.
  const runtime = createSimulatedRuntime({ pullMs: 20, startMs: 20 });
  const remove = runtime.remove.bind(runtime);
  runtime.remove = async (id: string) => {
    await new Promise((r) => setTimeout(r, 1_500));
    await remove(id);
  };
  const slow = await harness({ runtime, deleteSyncWaitMs: 100 });
  try {
    const p = testPod('slow-delete');
    await slow.provider.createPod(p, contextFor(slow, p));
    await waitFor('Running', () => slow.statuses.get(key(podRef(p)))?.phase === 'Running');
    await slow.provider.deletePod(p, 0);
    assert.equal(await slow.provider.arm.getGroup(groupNameOf(p)), undefined);
    assert.ok((slow.emu.stats().responsesByStatus['202'] ?? 0) >= 1, 'the DELETE was answered 202');
  } finally {
    await slow.close();
  }
});

test("creates and deletes are paced under ACI's windows: deferred with a slot rather than sent, and a 429 from another client is learned", async () => {
  // Windows scaled down (2 creations, 1 deletion per 3 s) so that the test takes seconds.
  const paced = await harness({
    limits: { creations: [{ count: 2, windowSeconds: 3 }], deletions: [{ count: 1, windowSeconds: 3 }] },
  });
  const puts = () => paced.attempts.filter((a) => a.operation === 'containerGroups.createOrUpdate').length;
  try {
    const pods = ['pace-a', 'pace-b', 'pace-c'].map((n) => testPod(n));
    const [a, b, c] = pods as [ReturnType<typeof testPod>, ReturnType<typeof testPod>, ReturnType<typeof testPod>];
    await paced.provider.createPod(a, contextFor(paced, a));
    await paced.provider.createPod(b, contextFor(paced, b));
    const asked = Date.now();
    const deferred = await paced.provider.createPod(c, contextFor(paced, c)).then(
      () => assert.fail('the third create went through a full window'),
      (e: unknown) => e,
    );
    assert.ok(deferred instanceof ProviderDeferredError);
    assert.equal(deferred.reason, 'CreationPaced');
    assert.match(deferred.message, /allows 2 container group creations per 3 s .* and that window is full/);
    assert.ok(
      deferred.retryAt >= asked + 2_000 && deferred.retryAt <= asked + 5_000,
      'its slot: when a creation leaves the window',
    );
    assert.equal(puts(), 2, 'nothing sent for the deferred create');
    await assert.rejects(paced.provider.createPod(c, contextFor(paced, c)), ProviderDeferredError);
    assert.equal(puts(), 2, 'asking again before the slot sends nothing either');
    await createLikeCore(paced, c);
    assert.ok(Date.now() >= deferred.retryAt, 'created at its slot');
    assert.equal(puts(), 3);

    // Deletes: one per window; the second waits for its slot.
    await paced.provider.deletePod(a, 0);
    const del = await paced.provider.deletePod(b, 0).then(
      () => assert.fail('the second delete went through a full window'),
      (e: unknown) => e,
    );
    assert.ok(del instanceof ProviderDeferredError && del.reason === 'DeletionPaced');
    // A timer may fire a millisecond before Date.now() reaches its end: come back just after the slot.
    await new Promise((r) => setTimeout(r, Math.max(0, del.retryAt - Date.now()) + 50));
    await paced.provider.deletePod(b, 0);

    // Another client of the subscription fills the window: the first 429 defers the create, and
    // nothing more is sent before its Retry-After.
    const other = createAciProvider({
      config: loadAciConfig(envFor(paced.emu), { creationWindows: [{ count: 1_000_000, windowMs: 1_000 }] }),
      clusterId: 'another-cluster',
      nodeName: 'another-node',
    });
    try {
      await new Promise((r) => setTimeout(r, 4_100)); // the window is empty again
      for (const n of ['other-a', 'other-b']) {
        const p = testPod(n);
        await other.createPod(p, contextFor(paced, p));
      }
      const d = testPod('pace-d');
      const throttled = await paced.provider.createPod(d, contextFor(paced, d)).then(
        () => assert.fail('created through a window another client filled'),
        (e: unknown) => e,
      );
      assert.ok(throttled instanceof ProviderDeferredError && throttled.reason === 'CreationPaced');
      assert.match(throttled.message, /throttled container group creations/);
      assert.equal(paced.emu.stats().creationsThrottled, 1, 'one 429, handed back at once');
      await assert.rejects(paced.provider.createPod(d, contextFor(paced, d)), ProviderDeferredError);
      assert.equal(paced.emu.stats().creationsThrottled, 1, 'no second PUT before Retry-After');
      await createLikeCore(paced, d);
    } finally {
      await other.close();
    }
    assert.equal(paced.emu.stats().deletionsThrottled, 0, 'no delete bounced off the window');
  } finally {
    await paced.close();
  }
});
