/**
 * The pod controller's rules, with the mock provider (or a tiny provider of the test's own)
 * and in-memory dependencies: each test runs in milliseconds. The e2e tests prove the same
 * against the real control plane.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Pod } from '@kubernetes/client-node';
import { silentLogger } from '../../src/common/logger.js';
import { reconcile } from '../../src/core/pods/decide.js';
import { PodController, type PodControllerOptions } from '../../src/core/pods/controller.js';
import { newRecord } from '../../src/core/pods/record.js';
import {
  ProviderDeferredError,
  TransientProviderError,
  type PodContext,
  type Provider,
} from '../../src/core/provider.js';
import { MockProvider } from '../../src/providers/mock/index.js';
import { waitFor } from '../support/wait.js';
import { aPod, FakeEvents, FakePods, FakeRefs, FakeWriter, newUid } from './core-fakes.js';

interface Harness {
  ctl: PodController;
  pods: FakePods;
  writer: FakeWriter;
  events: FakeEvents;
  refs: FakeRefs;
  provider: Provider;
}

function harness(
  t: TestContext,
  provider: Provider = new MockProvider({ nodeName: 'node-a', clusterId: 'c1' }),
  extra: Partial<PodControllerOptions> = {},
): Harness {
  const pods = new FakePods();
  const writer = new FakeWriter(pods);
  const events = new FakeEvents(writer);
  const refs = new FakeRefs();
  const ctl = new PodController({
    provider,
    pods,
    writer,
    events,
    refs,
    nodeIP: '10.0.0.1',
    workers: 4,
    log: silentLogger(),
    backoff: { baseMs: 5, maxMs: 200, jitter: 0 },
    ...extra,
  });
  t.after(async () => {
    await ctl.stop();
    await provider.close?.();
  });
  return { ctl, pods, writer, events, refs, provider };
}

const until = <T>(what: string, check: () => T | undefined | null | false) =>
  waitFor(what, check, { timeoutMs: 5_000, intervalMs: 2 });

function phaseOf(h: Harness, name: string): string | undefined {
  return h.pods.get('ns', name)?.status?.phase;
}

test('a pod is created once and Running is written once; later passes and our own write cause no second write', async (t) => {
  const h = harness(t);
  await h.ctl.start();
  let passes = 0;
  const sync = h.ctl.sync.bind(h.ctl);
  h.ctl.sync = (key) => {
    passes++;
    return sync(key);
  };
  const pod = h.pods.put(aPod('web'));
  await until('Running', () => phaseOf(h, 'web') === 'Running');
  await h.pods.delivered();
  await h.ctl.whenIdle();
  const uid = pod.metadata?.uid ?? '';
  assert.equal((h.provider as MockProvider).calls(uid)?.created, 1);
  const writes = h.writer.patches.filter((p) => p.uid === uid);
  assert.equal(writes.length, 1, 'one status write for a pod that went straight to Running');
  assert.equal(writes[0]?.status.phase, 'Running');
  const passesAfterWrite = passes;
  // One pass for the new pod (create), one for the provider's Running push (the write); none for the write's own watch event.
  assert.equal(passes, 2, 'our own status write triggered no pass');

  // Someone else's change (a label) runs a pass, which finds nothing to write.
  h.pods.change('ns', 'web', (p) => {
    p.metadata = { ...p.metadata, labels: { touched: 'yes' } };
  });
  await until('the pass for the label change', () => passes > passesAfterWrite);
  await h.pods.delivered();
  await h.ctl.whenIdle();
  assert.equal(h.writer.patches.filter((p) => p.uid === uid).length, 1, 'no repeated status write');
  assert.equal(passes, passesAfterWrite + 1, 'the label change ran one pass');
  assert.deepEqual(h.events.reasons('web'), ['Created']);
});

test('two incarnations of one name: the old uid leaves the provider, the new one is created and gets its own status', async (t) => {
  const h = harness(t);
  const mock = h.provider as MockProvider;
  await h.ctl.start();
  const first = h.pods.put(aPod('twin'));
  await until('first Running', () => phaseOf(h, 'twin') === 'Running');
  const oldUid = first.metadata?.uid ?? '';

  // The name is taken by a new pod (new uid) before the old one's deletion was seen.
  const second = h.pods.put(aPod('twin'));
  const newUidValue = second.metadata?.uid ?? '';
  assert.notEqual(oldUid, newUidValue);
  await until('second Running', () =>
    h.writer.patches.some((p) => p.uid === newUidValue && p.status.phase === 'Running'),
  );
  await h.ctl.whenIdle();
  assert.equal(mock.calls(oldUid)?.deleted, 1, 'the old incarnation was removed from the provider');
  assert.equal(mock.calls(newUidValue)?.created, 1, 'the new incarnation was created once');
  assert.deepEqual(
    (await mock.listPods()).map((p) => p.ref.uid),
    [newUidValue],
  );
});

test('lost at start: a Running pod whose workload is gone fails with ProviderPodLost and is not re-created', async (t) => {
  const h = harness(t);
  const mock = h.provider as MockProvider;
  const pod = h.pods.put(aPod('lost', { status: { phase: 'Running' } }));
  const fresh = h.pods.put(aPod('fresh'));
  await h.ctl.start();
  await until('Failed', () => phaseOf(h, 'lost') === 'Failed');
  await until('the other pod Running', () => phaseOf(h, 'fresh') === 'Running');
  await h.ctl.whenIdle();
  const uid = pod.metadata?.uid ?? '';
  assert.equal(h.pods.get('ns', 'lost')?.status?.reason, 'ProviderPodLost');
  assert.equal(mock.calls(uid), undefined, 'createPod was never called for the lost pod');
  assert.ok(mock.calls(fresh.metadata?.uid ?? '')?.created === 1);
  assert.deepEqual(h.events.reasons('lost'), ['ProviderPodLost']);
});

test('a missing Secret: the pod waits with CreateContainerConfigError, then runs once the Secret appears', async (t) => {
  const h = harness(t);
  await h.ctl.start();
  h.pods.put(
    aPod('needs', {
      spec: {
        containers: [
          {
            name: 'app',
            image: 'nginx',
            env: [{ name: 'P', valueFrom: { secretKeyRef: { name: 'creds', key: 'pw' } } }],
          },
        ],
      },
    }),
  );
  await until(
    'waiting status',
    () =>
      h.pods.get('ns', 'needs')?.status?.containerStatuses?.[0]?.state?.waiting?.reason ===
      'CreateContainerConfigError',
  );
  assert.ok(h.events.reasons('needs').includes('MandatorySecretNotFound'));
  assert.equal((await h.provider.listPods()).length, 0, 'nothing created while the Secret is missing');

  h.refs.secrets.set('ns/creds', {
    metadata: { name: 'creds', namespace: 'ns' },
    data: { pw: Buffer.from('hunter2').toString('base64') },
  });
  h.ctl.referenceChanged('Secret', 'ns', 'creds');
  await until('Running', () => phaseOf(h, 'needs') === 'Running');
  const [created] = await h.provider.listPods();
  assert.equal(created?.ref.name, 'needs');
});

test("volume files: the core resolves them after the missing-reference wait, with the provider's resource lookup", async (t) => {
  const seen: PodContext[] = [];
  class Capturing extends MockProvider {
    containerResource(_pod: V1Pod, container: string, resource: string): number | undefined {
      return container === 'app' && resource === 'limits.memory' ? 3e9 : undefined;
    }
    override async createPod(pod: V1Pod, ctx: PodContext): Promise<void> {
      seen.push(ctx);
      return super.createPod(pod, ctx);
    }
  }
  const h = harness(t, new Capturing({ nodeName: 'node-a', clusterId: 'c1' }));
  await h.ctl.start();
  h.pods.put(
    aPod('vols', {
      spec: {
        containers: [{ name: 'app', image: 'nginx' }],
        volumes: [
          { name: 'creds', secret: { secretName: 'creds', items: [{ key: 'pw', path: 'conf/pw' }] } },
          {
            name: 'info',
            downwardAPI: { items: [{ path: 'mem', resourceFieldRef: { resource: 'limits.memory', divisor: '1G' } }] },
          },
        ],
      },
    }),
  );
  await until(
    'waiting status',
    () =>
      h.pods.get('ns', 'vols')?.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError',
  );
  assert.equal(seen.length, 0, 'the provider is not called while the Secret is missing');
  h.refs.secrets.set('ns/creds', {
    metadata: { name: 'creds', namespace: 'ns' },
    data: { pw: Buffer.from('hunter2').toString('base64') },
  });
  h.ctl.referenceChanged('Secret', 'ns', 'creds');
  await until('Running', () => phaseOf(h, 'vols') === 'Running');
  const files = await seen[0]?.volumeFiles();
  assert.deepEqual([...(files?.keys() ?? [])], ['creds', 'info']);
  assert.deepEqual(files?.get('creds')?.get('conf/pw'), {
    content: Buffer.from('hunter2').toString('base64'),
    mode: 0o644,
    sensitive: true,
  });
  assert.equal(Buffer.from(files?.get('info')?.get('mem')?.content ?? '', 'base64').toString(), '3');
});

test('rejection: a pod the provider can never run fails with the reason and the field, once', async (t) => {
  const h = harness(t);
  await h.ctl.start();
  h.pods.put(
    aPod('priv', { spec: { containers: [{ name: 'app', image: 'nginx', securityContext: { privileged: true } }] } }),
  );
  await until('Failed', () => phaseOf(h, 'priv') === 'Failed');
  await h.ctl.whenIdle();
  const st = h.pods.get('ns', 'priv')?.status;
  assert.equal(st?.reason, 'UnsupportedField');
  assert.match(st?.message ?? '', /spec\.containers\[0\]\.securityContext\.privileged/);
  assert.deepEqual(h.events.reasons('priv'), ['UnsupportedField']);
  assert.equal(h.events.list[0]?.writesBefore, 1, 'the Event went out after the Failed status write');
  assert.equal((await h.provider.listPods()).length, 0);
  // A later change does not try again: a failed pod stays failed.
  h.pods.change('ns', 'priv', (p) => void (p.metadata = { ...p.metadata, labels: { again: '1' } }));
  await h.ctl.whenIdle();
  assert.deepEqual(h.events.reasons('priv'), ['UnsupportedField']);
});

/** A provider whose createPod fails the first `failures` times, recording when each call came. */
function flakyProvider(failures: number, retryAfterMs?: number): Provider & { calls: number[] } {
  const inner = new MockProvider({ nodeName: 'node-a', clusterId: 'c1' });
  const calls: number[] = [];
  return Object.assign(inner, {
    calls,
    createPod: async (pod: V1Pod, ctx: PodContext) => {
      if (pod.metadata?.name !== 'flaky') return MockProvider.prototype.createPod.call(inner, pod, ctx);
      calls.push(performance.now());
      // What a provider says during the call (ACI's InspectFailed, say) goes out after the pass's status write.
      if (calls.length === 1) ctx.recordEvent('Warning', 'ProviderSaid', 'during the first call');
      if (calls.length <= failures)
        throw new TransientProviderError('Throttled', `try ${calls.length} throttled`, retryAfterMs);
      return MockProvider.prototype.createPod.call(inner, pod, ctx);
    },
  });
}

test('transient failures are retried with growing delays through the queue, with the reason on the pod meanwhile', async (t) => {
  const provider = flakyProvider(4);
  const h = harness(t, provider, { backoff: { baseMs: 20, maxMs: 2_000, jitter: 0 } });
  await h.ctl.start();
  h.pods.put(aPod('flaky'));
  await until(
    'waiting with the reason',
    () => h.pods.get('ns', 'flaky')?.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'Throttled',
  );
  await until('Running after the retries', () => phaseOf(h, 'flaky') === 'Running');
  assert.equal(provider.calls.length, 5);
  const gaps = provider.calls.slice(1).map((at, i) => at - (provider.calls[i] ?? 0));
  // 20, 40, 80, 160 ms: each at least its backoff, and each longer than the one before.
  for (let i = 1; i < gaps.length; i++)
    assert.ok((gaps[i] ?? 0) > (gaps[i - 1] ?? 0), `delays grow: ${gaps.map(Math.round).join(', ')}`);
  assert.ok((gaps[3] ?? 0) >= 150, `the fourth delay is the backoff's 160 ms: ${gaps.map(Math.round).join(', ')}`);
  assert.equal(h.events.reasons('flaky').filter((r) => r === 'Throttled').length, 4);
  const said = h.events.list.find((e) => e.reason === 'ProviderSaid');
  assert.equal(said?.writesBefore, 1, 'the event raised during createPod waited for the waiting status write');
});

test('a create that must wait out Retry-After holds no worker: with one worker, another pod runs meanwhile', async (t) => {
  const provider = flakyProvider(1, 400);
  const h = harness(t, provider, { workers: 1, backoff: { baseMs: 1, maxMs: 10, jitter: 0 } });
  await h.ctl.start();
  h.pods.put(aPod('flaky'));
  await until('first attempt', () => provider.calls.length === 1);
  const t0 = provider.calls[0] ?? 0;
  h.pods.put(aPod('other'));
  await until('the other pod Running', () => phaseOf(h, 'other') === 'Running');
  assert.equal(provider.calls.length, 1, 'the other pod ran while the first one waited');
  // Changes to the waiting pod do not cut its wait short.
  h.pods.change('ns', 'flaky', (p) => void (p.metadata = { ...p.metadata, labels: { nudge: '1' } }));
  await until('flaky Running', () => phaseOf(h, 'flaky') === 'Running');
  assert.ok(
    (provider.calls[1] ?? 0) - t0 >= 390,
    `the retry waited for Retry-After (${Math.round((provider.calls[1] ?? 0) - t0)} ms)`,
  );
});

test('a create the provider defers holds no worker and counts no failure; the pod says why and until when, in one Event', async (t) => {
  const inner = new MockProvider({ nodeName: 'node-a', clusterId: 'c1' });
  const calls: number[] = [];
  let slot = 0;
  const provider = Object.assign(inner, {
    createPod: async (pod: V1Pod, ctx: PodContext) => {
      if (pod.metadata?.name !== 'paced') return MockProvider.prototype.createPod.call(inner, pod, ctx);
      calls.push(Date.now());
      // The slot is 600 ms after the first ask; asked again early, the provider gives the same slot.
      slot ||= Date.now() + 600;
      if (Date.now() < slot) throw new ProviderDeferredError('CreationPaced', 'the window is full', slot);
      return MockProvider.prototype.createPod.call(inner, pod, ctx);
    },
  });
  const h = harness(t, provider, { workers: 1, backoff: { baseMs: 1, maxMs: 10, jitter: 0 } });
  await h.ctl.start();
  h.pods.put(aPod('paced'));
  const waiting = await until('waiting with the reason', () => {
    const s = h.pods.get('ns', 'paced')?.status;
    const w = s?.containerStatuses?.[0]?.state?.waiting;
    return w?.reason === 'CreationPaced' ? { w, ready: s?.conditions?.find((c) => c.type === 'Ready') } : undefined;
  });
  const expected = new Date(Math.ceil(slot / 1000) * 1000).toISOString();
  assert.equal(waiting.w.message, `the window is full; expected at ${expected}`);
  assert.equal(waiting.ready?.reason, 'CreationPaced');
  assert.match(waiting.ready?.message ?? '', /expected at/);
  // With its only worker free, another pod runs meanwhile, and nudges do not cut the wait short.
  h.pods.put(aPod('other'));
  await until('the other pod Running', () => phaseOf(h, 'other') === 'Running');
  h.pods.change('ns', 'paced', (p) => void (p.metadata = { ...p.metadata, labels: { nudge: '1' } }));
  assert.equal(phaseOf(h, 'paced'), 'Pending');
  await until('paced Running', () => phaseOf(h, 'paced') === 'Running');
  assert.equal(
    calls.length,
    2,
    `asked once, then at its slot (${calls.map((c) => c - (calls[0] ?? 0)).join(', ')} ms)`,
  );
  assert.ok((calls[1] ?? 0) >= slot, 'not before its slot');
  const paced = h.events.list.filter((e) => e.reason === 'CreationPaced');
  assert.equal(paced.length, 1, 'one Event');
  assert.equal(paced[0]?.type, 'Normal');
  assert.match(paced[0]?.message ?? '', /expected at/);
});

test('events from the provider reach pods it holds, adopted ones included; others are dropped', async (t) => {
  const mock = new MockProvider({ nodeName: 'node-a', clusterId: 'c1' });
  const adopted = aPod('adopted');
  // The pod was created by an earlier process: the provider has it, this controller never called createPod.
  await mock.createPod(adopted, {
    env: new Map(),
    getSecret: async () => undefined,
    volumeFiles: async () => new Map(),
    recordEvent: () => undefined,
  });
  const h = harness(t, mock);
  h.pods.put(adopted);
  await h.ctl.start();
  await until('adopted Running', () => phaseOf(h, 'adopted') === 'Running');
  assert.equal(mock.calls(adopted.metadata?.uid ?? '')?.createCalls, 1, 'adopted, not created again');
  const ref = { namespace: 'ns', name: 'adopted', uid: adopted.metadata?.uid ?? '' };
  assert.ok(mock.raiseEvent(ref, { type: 'Warning', reason: 'BackendHiccup', message: 'container app restarted' }));
  await until('the event recorded', () => h.events.list.find((e) => e.reason === 'BackendHiccup'));
  const ev = h.events.list.find((e) => e.reason === 'BackendHiccup');
  assert.deepEqual(ev?.pod, ref);
  assert.equal(ev?.type, 'Warning');
  assert.equal(
    mock.raiseEvent({ namespace: 'ns', name: 'nobody', uid: newUid() }, { type: 'Normal', reason: 'X', message: 'y' }),
    false,
  );
});

test('node allocatable is known before the first pod is admitted (resourceFieldRef without limits)', async (t) => {
  const slow = () => new Promise<Record<string, string>>((r) => setTimeout(() => r({ cpu: '7', memory: '1Gi' }), 30));
  const h = harness(t, undefined, { allocatable: slow });
  h.pods.put(
    aPod('res', {
      spec: {
        containers: [
          {
            name: 'app',
            image: 'nginx',
            env: [{ name: 'CPUS', valueFrom: { resourceFieldRef: { resource: 'limits.cpu' } } }],
          },
        ],
      },
    }),
  );
  await h.ctl.start();
  await until('Running', () => phaseOf(h, 'res') === 'Running');
  const mock = h.provider as MockProvider;
  const uid = h.pods.get('ns', 'res')?.metadata?.uid ?? '';
  const env = (
    mock as unknown as {
      store: { state: { pods: Record<string, { env: Record<string, Array<{ name: string; value?: string }>> }> } };
    }
  ).store.state.pods[uid]?.env['app'];
  assert.deepEqual(
    env?.find((v) => v.name === 'CPUS'),
    { name: 'CPUS', value: '7' },
  );
});

test('deletion: stopped in the provider, one API delete, none again while the watch lags', async (t) => {
  const h = harness(t);
  const mock = h.provider as MockProvider;
  await h.ctl.start();
  const pod = h.pods.put(aPod('bye'));
  await until('Running', () => phaseOf(h, 'bye') === 'Running');
  await h.ctl.whenIdle();
  h.writer.removeOnDelete = false;
  h.pods.change(
    'ns',
    'bye',
    (p) => void (p.metadata = { ...p.metadata, deletionTimestamp: new Date(), deletionGracePeriodSeconds: 0 }),
  );
  await until('the API delete', () => h.writer.deletes.length === 1);
  await h.ctl.whenIdle();
  // More changes arrive before the watch reports the pod gone: no second DELETE.
  h.pods.change('ns', 'bye', (p) => void (p.metadata = { ...p.metadata, labels: { late: '1' } }));
  await h.ctl.whenIdle();
  assert.equal(h.writer.deletes.length, 1, 'one DELETE per pod');
  assert.equal(mock.calls(pod.metadata?.uid ?? '')?.deleted, 1);
  assert.ok(h.events.reasons('bye').includes('Killing'));
  h.pods.remove('ns', 'bye');
  await h.ctl.whenIdle();
  assert.equal(h.writer.deletes.length, 1);
});

test('the decision step is pure: the same record and observation give the same outcome', () => {
  const r = newRecord('ns', 'p');
  const pod = aPod('p');
  const o = { pod, now: 1000, nodeIP: '10.0.0.1' };
  assert.deepEqual(reconcile(r, o), { kind: 'Resolve', pod });
  const res = { env: new Map(), missing: [], notes: [], invalid: [] };
  assert.equal(reconcile(r, { ...o, resolution: res }).kind, 'Create');
  r.incarnations.set(pod.metadata?.uid ?? '', { uid: pod.metadata?.uid ?? '', pod, created: false, retryAt: 1500 });
  assert.deepEqual(reconcile(r, { ...o, resolution: res }), { kind: 'Hold', ms: 500 });
  assert.deepEqual(reconcile(r, { ...o, pod: undefined }), { kind: 'RemoveOld', uid: pod.metadata?.uid });
});

test('start-up outage: the first list is retried with backoff, nothing is created or deleted before it answers, then pods reconcile', async (t) => {
  const mock = new MockProvider({ nodeName: 'node-a', clusterId: 'c1' });
  let failuresLeft = 3;
  let listCalls = 0;
  const list = mock.listPods.bind(mock);
  mock.listPods = async () => {
    listCalls++;
    if (failuresLeft-- > 0) throw new Error('ARM answered 503 ServiceUnavailable\nsecond line');
    return list();
  };
  const create = mock.createPod.bind(mock);
  let createdBeforeList = 0;
  mock.createPod = async (pod, ctx) => {
    if (failuresLeft >= 0) createdBeforeList++;
    return create(pod, ctx);
  };
  let told = 0;
  const h = harness(t, mock, {
    startBackoff: { baseMs: 5, maxMs: 20, jitter: 0 },
    onStartupChange: () => told++,
  });
  assert.equal(h.ctl.startupHealth?.reason, 'ProviderNotSynced', 'not synced before the first list');
  const pod = h.pods.put(aPod('meanwhile'));
  const started = h.ctl.start();
  await until('a failed list reported', () => h.ctl.startupHealth?.reason === 'ProviderUnavailable');
  assert.match(h.ctl.startupHealth?.message ?? '', /could not be listed.*503 ServiceUnavailable$/);
  assert.ok(!(h.ctl.startupHealth?.message ?? '').includes('second line'), 'one line of the error');
  await started;
  assert.equal(listCalls, 4, 'three failures, then the list that answered');
  assert.equal(told, 4, 'told once per failure, and once when the list answered (the node goes Ready then)');
  assert.equal(h.ctl.startupHealth, undefined, 'synced');
  await until('the pod created meanwhile runs', () => phaseOf(h, 'meanwhile') === 'Running');
  assert.equal(createdBeforeList, 0, 'no create before the first list answered');
  assert.equal(mock.calls(pod.metadata?.uid ?? '')?.created, 1);
});

test('start-up outage: stop() during the retries ends start() without listing again', async (t) => {
  const mock = new MockProvider({ nodeName: 'node-a', clusterId: 'c1' });
  let listCalls = 0;
  mock.listPods = async () => {
    listCalls++;
    throw new Error('unreachable');
  };
  const h = harness(t, mock, { startBackoff: { baseMs: 60_000, maxMs: 60_000, jitter: 0 } });
  const started = h.ctl.start();
  await until('the first failure', () => h.ctl.startupHealth?.reason === 'ProviderUnavailable');
  await h.ctl.stop();
  await started;
  assert.equal(listCalls, 1);
  assert.equal(h.ctl.startupHealth?.reason, 'ProviderUnavailable', 'never synced');
});
