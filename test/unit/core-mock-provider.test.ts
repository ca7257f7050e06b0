import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import {
  PodRejectedError,
  TransientProviderError,
  type PodContext,
  type ProviderPodStatus,
} from '../../src/core/provider.js';
import { MockProvider, readMockState } from '../../src/providers/mock/index.js';
import { waitFor } from '../support/wait.js';

const ctx: PodContext = {
  env: new Map(),
  getSecret: async () => undefined,
  volumeFiles: async () => new Map(),
  recordEvent: () => undefined,
};

function pod(
  uid: string,
  annotations: Record<string, string> = {},
  spec: Partial<NonNullable<V1Pod['spec']>> = {},
): V1Pod {
  return {
    metadata: { namespace: 'ns', name: `p-${uid}`, uid, annotations },
    spec: { containers: [{ name: 'c', image: 'busybox' }], ...spec },
  };
}

function statuses(p: MockProvider): Array<ProviderPodStatus & { uid: string }> {
  const seen: Array<ProviderPodStatus & { uid: string }> = [];
  p.onStatus((ref, s) => seen.push({ ...s, uid: ref.uid }));
  return seen;
}

const until = (what: string, check: () => boolean): Promise<true> =>
  waitFor(what, () => check() || undefined, { timeoutMs: 10_000, intervalMs: 5 });

test('a pod is Running at once, with IP, image and container ids; a repeated create is not a second workload', async () => {
  const m = new MockProvider({ nodeName: 'n', clusterId: 'c' });
  const seen = statuses(m);
  await m.createPod(pod('u1'), ctx);
  await m.createPod(pod('u1'), ctx);
  await until('a Running status', () => seen.some((s) => s.phase === 'Running'));
  const s = seen.find((x) => x.phase === 'Running');
  assert.match(s?.podIP ?? '', /^10\.\d+\.\d+\.\d+$/);
  const cs = s?.containerStatuses?.[0];
  assert.equal(cs?.ready, true);
  assert.equal(cs?.image, 'busybox');
  assert.ok(cs?.containerID && cs.imageID);
  assert.deepEqual(m.calls('u1'), { created: 1, createCalls: 2, deleteCalls: 0, deleted: 0 });
  await m.close();
});

test('containers configured to exit 0 under restartPolicy Never end Succeeded; non-zero under OnFailure restarts', async () => {
  const m = new MockProvider({ nodeName: 'n', clusterId: 'c' });
  const seen = statuses(m);
  await m.createPod(
    pod(
      'job',
      { 'mock.aci-connector.io/exit-code': '0', 'mock.aci-connector.io/run-ms': '10' },
      { restartPolicy: 'Never' },
    ),
    ctx,
  );
  await until('Succeeded', () => seen.some((s) => s.uid === 'job' && s.phase === 'Succeeded'));
  const done = seen.find((s) => s.uid === 'job' && s.phase === 'Succeeded');
  assert.equal(done?.containerStatuses?.[0]?.state?.terminated?.exitCode, 0);
  assert.equal(done?.containerStatuses?.[0]?.state?.terminated?.reason, 'Completed');

  await m.createPod(
    pod(
      'crash',
      { 'mock.aci-connector.io/exit-code': '3', 'mock.aci-connector.io/run-ms': '10' },
      { restartPolicy: 'OnFailure' },
    ),
    ctx,
  );
  await until('a restart', () =>
    seen.some((s) => s.uid === 'crash' && (s.containerStatuses?.[0]?.restartCount ?? 0) >= 1),
  );
  const r = seen.find((s) => s.uid === 'crash' && (s.containerStatuses?.[0]?.restartCount ?? 0) >= 1);
  assert.equal(r?.phase, 'Running');
  assert.equal(r?.containerStatuses?.[0]?.lastState?.terminated?.exitCode, 3);

  await m.createPod(
    pod(
      'fail',
      { 'mock.aci-connector.io/exit-code': '2', 'mock.aci-connector.io/run-ms': '10' },
      { restartPolicy: 'Never' },
    ),
    ctx,
  );
  await until('Failed', () => seen.some((s) => s.uid === 'fail' && s.phase === 'Failed'));
  await m.close();
});

test('a start delay reports Pending first, then Running', async () => {
  const m = new MockProvider({ nodeName: 'n', clusterId: 'c', startDelayMs: 30 });
  const seen = statuses(m);
  await m.createPod(pod('slow'), ctx);
  assert.equal((await m.getPod({ namespace: 'ns', name: 'p-slow', uid: 'slow' }))?.status.phase, 'Pending');
  await until('Running', () => seen.some((s) => s.phase === 'Running'));
  await m.close();
});

test('privileged containers are rejected naming the field; transient failures are thrown as configured', async () => {
  const m = new MockProvider({ nodeName: 'n', clusterId: 'c' });
  await assert.rejects(
    m.createPod(
      pod(
        'priv',
        {},
        {
          containers: [
            { name: 'ok', image: 'x' },
            { name: 'bad', image: 'x', securityContext: { privileged: true } },
          ],
        },
      ),
      ctx,
    ),
    (e: unknown) =>
      e instanceof PodRejectedError &&
      e.field === 'spec.containers[1].securityContext.privileged' &&
      e.message.includes(e.field),
  );
  const flaky = pod('flaky', { 'mock.aci-connector.io/transient-failures': '2' });
  await assert.rejects(
    m.createPod(flaky, ctx),
    (e: unknown) => e instanceof TransientProviderError && e.retryAfterMs === 200,
  );
  await assert.rejects(m.createPod(flaky, ctx), TransientProviderError);
  await m.createPod(flaky, ctx);
  assert.equal(m.calls('flaky')?.created, 1);
  assert.equal(m.calls('priv')?.created, 0);
  await m.close();
});

test('the state file outlives the instance; listPods returns only this node in this cluster', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mock-state-'));
  try {
    const file = join(dir, 'state.json');
    const a = new MockProvider({ nodeName: 'n', clusterId: 'c', stateFile: file });
    await a.createPod(pod('mine'), ctx);
    await a.close();
    const other = new MockProvider({ nodeName: 'other', clusterId: 'c', stateFile: file });
    await other.createPod(pod('theirs'), ctx);
    await other.close();

    const b = new MockProvider({ nodeName: 'n', clusterId: 'c', stateFile: file });
    assert.deepEqual(
      (await b.listPods()).map((p) => p.ref.uid),
      ['mine'],
    );
    assert.equal(await b.getPod({ namespace: 'ns', name: 'p-theirs', uid: 'theirs' }), undefined);
    await b.deletePod(pod('mine'), 0);
    await b.close();
    const state = readMockState(file);
    assert.deepEqual(Object.keys(state.pods), ['theirs'], "the other node's pod is untouched");
    assert.equal(state.calls.mine?.created, 1);
    assert.equal(state.calls.mine?.deleted, 1);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('health follows the health file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mock-health-'));
  try {
    const file = join(dir, 'unhealthy');
    const m = new MockProvider({ nodeName: 'n', clusterId: 'c', healthFile: file });
    assert.equal((await m.health()).ok, true);
    writeFileSync(file, 'backend down for maintenance');
    const h = await m.health();
    assert.equal(h.ok, false);
    assert.equal(h.reason, 'MockBackendUnhealthy');
    assert.equal(h.message, 'backend down for maintenance');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the state file: every save resolves once its change is on disk, while writes overlap changes', async () => {
  const { StateStore } = await import('../../src/providers/mock/state-store.js');
  const dir = mkdtempSync(join(tmpdir(), 'mock-state-'));
  try {
    const file = join(dir, 'state.json');
    const store = new StateStore(file);
    const saves: Array<Promise<void>> = [];
    for (let i = 0; i < 200; i++) {
      store.state.nextIP = i;
      const n = i;
      // Each save, spread over ticks, finds its own change on disk when it resolves.
      saves.push(store.save().then(() => assert.ok(readMockState(file).nextIP >= n, `save ${n}`)));
      if (i % 10 === 0) await new Promise((r) => setImmediate(r));
    }
    await Promise.all(saves);
    assert.equal(readMockState(file).nextIP, 199);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the state file is the whole state after creates, transitions and deletes, though only changed pods are serialized again', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mock-state-'));
  try {
    const file = join(dir, 'state.json');
    const p = new MockProvider({ nodeName: 'n', clusterId: 'c', stateFile: file });
    const seen = statuses(p);
    for (const uid of ['a', 'b', 'c'])
      await p.createPod(
        pod(
          uid,
          { 'mock.aci-connector.io/run-ms': '50', 'mock.aci-connector.io/exit-code': '0' },
          { restartPolicy: 'Never' },
        ),
        ctx,
      );
    await p.createPod(pod('d'), ctx);
    await p.deletePod(pod('b'), 0);
    // a and c exit on their own timers, after the file held them Running.
    await until('a and c Succeeded', () =>
      ['a', 'c'].every((u) => seen.some((s) => s.uid === u && s.phase === 'Succeeded')),
    );
    await p.close();
    const onDisk = readMockState(file);
    assert.deepEqual(Object.keys(onDisk.pods).sort(), ['a', 'c', 'd']);
    assert.equal(onDisk.pods.a?.status.phase, 'Succeeded');
    assert.equal(onDisk.pods.c?.status.phase, 'Succeeded');
    assert.equal(onDisk.pods.d?.status.phase, 'Running');
    assert.equal(onDisk.calls.b?.deleted, 1);
    const { StateStore } = await import('../../src/providers/mock/state-store.js');
    const again = new StateStore(file);
    assert.deepEqual(JSON.parse(again.serialize()), JSON.parse(JSON.stringify(again.state)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
