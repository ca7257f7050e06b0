import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Pod } from '@kubernetes/client-node';
import {
  PodRejectedError,
  TransientProviderError,
  type HealthStatus,
  type NodeInfoFromProvider,
  type PodContext,
  type PodRef,
  type Provider,
  type ProviderPod,
  type StatusListener,
} from '../../src/core/provider.js';
import { AciConfigError } from '../../src/providers/aci/index.js';
import { loadAciTargets } from '../../src/providers/aci/targets/config.js';
import { MultiTargetProvider, sumResources } from '../../src/providers/aci/targets/multi-target.js';
import {
  candidatesFor,
  chooseTarget,
  CreationLedger,
  REGION_ANNOTATION,
  TARGET_ANNOTATION,
  type TargetRoom,
} from '../../src/providers/aci/targets/placement.js';
import { ScopedSettings, parseScopes } from '../../src/emulator/scopes.js';
import { defaultThrottleLimits } from '../../src/emulator/limits.js';

const base = {
  AZURE_SUBSCRIPTION_ID: 'sub-0',
  ACI_RESOURCE_GROUP: 'rg',
  AZURE_CLIENT_ID: 'id-0',
  AZURE_CLIENT_KEY: 'secret-0',
  AZURE_TENANT_ID: 'tenant',
};

// ---- configuration ----------------------------------------------------------

test('without ACI_TARGETS there is no target list: the single-target configuration applies unchanged', () => {
  assert.equal(loadAciTargets(base), undefined);
  assert.equal(loadAciTargets({ ...base, ACI_TARGETS: '  ' }), undefined);
});

test('targets overlay the connector’s environment; a target with its own client id never inherits the secret', () => {
  const targets = loadAciTargets({
    ...base,
    ACI_REGION: 'westus',
    SECRET_B: 'secret-b',
    ACI_TARGETS: JSON.stringify([
      { name: 'a', subscriptionId: 'sub-a' },
      { name: 'b', subscriptionId: 'sub-b', region: 'eastus', clientId: 'id-b', clientSecretEnv: 'SECRET_B' },
      { name: 'c', subscriptionId: 'sub-c', clientId: 'id-c', creationWindows: [{ count: 50, windowSeconds: 20 }] },
      { name: 'd', subscriptionId: 'sub-d', env: { ACI_CREATION_WINDOWS: '10/60,20/600' } },
    ]),
  });
  assert.ok(targets);
  const [a, b, c, d] = targets;
  assert.equal(a?.config.subscriptionId, 'sub-a');
  assert.equal(a?.config.resourceGroup, 'rg');
  assert.equal(a?.config.region, 'westus');
  assert.equal(a?.config.clientId, 'id-0');
  assert.equal(a?.config.clientSecret, 'secret-0');
  assert.deepEqual(a?.creationWindows, [
    { count: 100, windowSeconds: 300 },
    { count: 300, windowSeconds: 3600 },
  ]);
  assert.equal(b?.config.region, 'eastus');
  assert.equal(b?.config.clientId, 'id-b');
  assert.equal(b?.config.clientSecret, 'secret-b');
  assert.equal(c?.config.clientId, 'id-c');
  assert.equal(c?.config.clientSecret, undefined, 'managed or workload identity for c');
  assert.deepEqual(c?.creationWindows, [{ count: 50, windowSeconds: 20 }]);
  assert.deepEqual(d?.creationWindows, [
    { count: 10, windowSeconds: 60 },
    { count: 20, windowSeconds: 600 },
  ]);
});

test('ACI_TARGETS may name a JSON file', () => {
  const file = join(mkdtempSync(join(tmpdir(), 'targets-')), 'targets.json');
  writeFileSync(file, JSON.stringify([{ name: 'one', resourceGroup: 'rg-1' }]));
  const targets = loadAciTargets({ ...base, ACI_TARGETS: file });
  assert.equal(targets?.[0]?.config.resourceGroup, 'rg-1');
});

test('a bad target list is an AciConfigError naming the target and the fault', () => {
  const cases: [unknown, RegExp][] = [
    ['[not json', /not valid JSON/],
    ['/no/such/file.json', /neither JSON nor an existing file/],
    [[], /lists no target/],
    [{ name: 'a' }, /must be a JSON list/],
    [[{ name: 'a', creationWindows: [{ count: 0, windowSeconds: 5 }] }], /\[0\.creationWindows\.0\]: must be/],
    [[{ name: 'a', env: { 'BAD-NAME': 'x' } }], /must be an environment variable name/],
    [[{ name: 'Bad Name' }], /\[0\.name\]: must be a DNS label/],
    [[{ name: 'a', extra: 1 }], /extra/],
    [[{ name: 'a' }, { name: 'a', resourceGroup: 'rg-2' }], /two targets are named 'a'/],
    [[{ name: 'a' }, { name: 'b' }], /targets 'a' and 'b' use the same resource group rg/],
    [[{ name: 'a', clientSecretEnv: 'UNSET_SECRET' }], /target 'a' takes its client secret from UNSET_SECRET/],
    [[{ name: 'a', resourceGroup: 'bad/rg' }], /target 'a': ACI_RESOURCE_GROUP 'bad\/rg' is not a valid/],
    [[{ name: 'a', env: { ACI_CREATION_WINDOWS: '5 per minute' } }], /target 'a': ACI_CREATION_WINDOWS must be/],
  ];
  for (const [list, message] of cases) {
    const raw = typeof list === 'string' ? list : JSON.stringify(list);
    assert.throws(
      () => loadAciTargets({ ...base, ACI_TARGETS: raw }),
      (e: unknown) => e instanceof AciConfigError && message.test(e.message),
      `${raw} → ${message}`,
    );
  }
});

// ---- placement --------------------------------------------------------------

function room(name: string, o: Partial<TargetRoom> = {}): TargetRoom {
  return { name, region: 'westus', healthy: true, quotaRoom: 100, windowRoom: 100, freesAt: 0, placed: 0, ...o };
}

function podWith(annotations: Record<string, string> = {}, name = 'p'): V1Pod {
  return { metadata: { namespace: 'ns', name, uid: `uid-${name}`, annotations }, spec: { containers: [] } };
}

test('a pod names its target by annotation, or a region; a name or region the node lacks is rejected with the field', () => {
  const targets = [room('a'), room('b', { region: 'East US' }), room('c', { region: 'eastus' })];
  assert.deepEqual(
    candidatesFor(podWith({ [TARGET_ANNOTATION]: 'b' }), targets).candidates.map((t) => t.name),
    ['b'],
  );
  assert.equal(candidatesFor(podWith({ [TARGET_ANNOTATION]: 'b' }), targets).pinned, true);
  assert.deepEqual(
    candidatesFor(podWith({ [REGION_ANNOTATION]: 'EastUS' }), targets).candidates.map((t) => t.name),
    ['b', 'c'],
  );
  assert.deepEqual(
    candidatesFor(podWith(), targets).candidates.map((t) => t.name),
    ['a', 'b', 'c'],
  );
  assert.throws(
    () => candidatesFor(podWith({ [TARGET_ANNOTATION]: 'z' }), targets),
    (e: unknown) =>
      e instanceof PodRejectedError &&
      e.reason === 'UnknownAciTarget' &&
      e.field === `metadata.annotations[${TARGET_ANNOTATION}]` &&
      /targets: a, b, c/.test(e.message),
  );
  assert.throws(
    () => candidatesFor(podWith({ [REGION_ANNOTATION]: 'northeurope' }), targets),
    (e: unknown) => e instanceof PodRejectedError && e.reason === 'UnknownAciRegion',
  );
});

test('by default the target with the most room wins: the smaller of quota and window room', () => {
  assert.equal(chooseTarget([room('a', { windowRoom: 10 }), room('b', { windowRoom: 40 })])?.name, 'b');
  assert.equal(chooseTarget([room('a', { quotaRoom: 5 }), room('b', { windowRoom: 40, quotaRoom: 30 })])?.name, 'b');
  // Equal room: the one holding fewer pods, then configuration order.
  assert.equal(chooseTarget([room('a', { placed: 3 }), room('b', { placed: 2 })])?.name, 'b');
  assert.equal(chooseTarget([room('a'), room('b')])?.name, 'a');
  // A failing target gets nothing while another is healthy.
  assert.equal(chooseTarget([room('a', { healthy: false, windowRoom: 90 }), room('b', { windowRoom: 1 })])?.name, 'b');
  // No room anywhere: the window that frees first; a full quota only when nothing else is left.
  assert.equal(
    chooseTarget([room('a', { windowRoom: 0, freesAt: 5_000 }), room('b', { windowRoom: 0, freesAt: 2_000 })])?.name,
    'b',
  );
  assert.equal(
    chooseTarget([room('a', { quotaRoom: 0, freesAt: 0 }), room('b', { windowRoom: 0, freesAt: 9_000 })])?.name,
    'b',
  );
  assert.equal(chooseTarget([room('a'), room('b')], new Set(['a']))?.name, 'b');
});

test('the creation ledger counts creations against every window and says when a slot frees', () => {
  const l = new CreationLedger([
    { count: 2, windowSeconds: 10 },
    { count: 3, windowSeconds: 60 },
  ]);
  assert.deepEqual(l.room(0), { room: 2, freesAt: 0 });
  l.record(0);
  l.record(1_000);
  assert.deepEqual(l.room(2_000), { room: 0, freesAt: 10_000 });
  assert.deepEqual(l.room(10_500), { room: 1, freesAt: 10_500 });
  l.record(10_500);
  // The 10 s window has room again at 11 s, the minute window only when the first creation leaves it.
  assert.deepEqual(l.room(12_000), { room: 0, freesAt: 60_000 });
});

// ---- the composite provider ---------------------------------------------------

class FakeTarget implements Provider {
  pods = new Map<string, ProviderPod>();
  creates: string[] = [];
  deletes: string[] = [];
  failNext: Error[] = [];
  listener?: StatusListener;
  constructor(
    readonly name: string,
    readonly capacity: Record<string, string>,
    readonly healthOk = true,
  ) {}
  async nodeInfo(): Promise<NodeInfoFromProvider> {
    return {
      capacity: this.capacity,
      labels: { region: this.name, zone: '0' },
      operatingSystem: 'linux',
      architecture: 'amd64',
    };
  }
  async health(): Promise<HealthStatus> {
    return this.healthOk
      ? { ok: true, reason: 'AciReachable', message: 'ok' }
      : { ok: false, reason: 'AciUnreachable', message: `${this.name} down` };
  }
  async createPod(pod: V1Pod): Promise<void> {
    const name = pod.metadata?.name ?? '';
    this.creates.push(name);
    const e = this.failNext.shift();
    if (e) throw e;
    const ref = { namespace: 'ns', name, uid: pod.metadata?.uid ?? '' };
    this.pods.set(name, { ref, status: { phase: 'Pending' } });
  }
  async updatePod(): Promise<void> {}
  containerResource(): number | undefined {
    return this.name === 'a' ? 1 : 2;
  }
  async deletePod(pod: V1Pod): Promise<void> {
    this.deletes.push(pod.metadata?.name ?? '');
    this.pods.delete(pod.metadata?.name ?? '');
  }
  async getPod(ref: PodRef): Promise<ProviderPod | undefined> {
    return this.pods.get(ref.name);
  }
  async listPods(): Promise<ProviderPod[]> {
    return [...this.pods.values()];
  }
  onStatus(l: StatusListener): void {
    this.listener = l;
  }
  onEvent(): void {}
  async portForwardAddress(ref: PodRef): Promise<string | undefined> {
    return this.pods.has(ref.name) ? `${this.name}-ip` : undefined;
  }
}

const ctx: PodContext = {
  env: new Map(),
  getSecret: async () => undefined,
  volumeFiles: async () => new Map(),
  recordEvent: () => undefined,
};

function composite(...targets: FakeTarget[]): MultiTargetProvider {
  return new MultiTargetProvider({
    targets: targets.map((p) => ({
      name: p.name,
      region: p.name === 'b' ? 'eastus' : 'westus',
      provider: p,
      creationWindows: [{ count: 100, windowSeconds: 300 }],
    })),
  });
}

test('node capacity is the sum of the targets’; labels only where they agree', async () => {
  const a = new FakeTarget('a', { cpu: '100', memory: '4Ti', pods: '450', 'ephemeral-storage': '22500G' });
  const b = new FakeTarget('b', { cpu: '50', memory: '1Ti', pods: '350', 'ephemeral-storage': '17500G' });
  const info = await composite(a, b).nodeInfo();
  assert.deepEqual(info.capacity, { cpu: '150', memory: '5Ti', pods: '800', 'ephemeral-storage': '40T' });
  assert.deepEqual(info.labels, { zone: '0' });
  assert.deepEqual(sumResources([{ cpu: '500m' }, { cpu: '1' }]), { cpu: '1500m' });
});

test('pods alternate over equal targets, and each call goes where its pod lives', async () => {
  const a = new FakeTarget('a', { pods: '100' });
  const b = new FakeTarget('b', { pods: '100' });
  const m = composite(a, b);
  for (let i = 0; i < 6; i++) await m.createPod(podWith({}, `p${i}`), ctx);
  assert.deepEqual(a.creates, ['p0', 'p2', 'p4']);
  assert.deepEqual(b.creates, ['p1', 'p3', 'p5']);
  assert.equal(await m.portForwardAddress({ namespace: 'ns', name: 'p3', uid: 'uid-p3' }), 'b-ip');
  await m.deletePod(podWith({}, 'p3'), 30);
  assert.deepEqual([a.deletes, b.deletes], [[], ['p3']]);
  assert.equal((await m.listPods()).length, 5);
});

test("what a container gets comes from the pod's target, or the first target before the pod is placed", async () => {
  const m = composite(new FakeTarget('a', { pods: '100' }), new FakeTarget('b', { pods: '100' }));
  assert.equal(m.containerResource(podWith({}, 'p1'), 'app', 'limits.cpu'), 1, 'not placed yet: the first target');
  await m.createPod(podWith({}, 'p0'), ctx);
  await m.createPod(podWith({}, 'p1'), ctx);
  assert.equal(m.containerResource(podWith({}, 'p0'), 'app', 'limits.cpu'), 1);
  assert.equal(m.containerResource(podWith({}, 'p1'), 'app', 'limits.cpu'), 2, 'placed on b');
});

test('the quota room steers pods: each target fills in proportion to its room', async () => {
  const a = new FakeTarget('a', { pods: '3' });
  const b = new FakeTarget('b', { pods: '5' });
  const m = composite(a, b);
  for (let i = 0; i < 8; i++) await m.createPod(podWith({}, `p${i}`), ctx);
  // b leads until both have 3 left, then they take turns.
  assert.deepEqual(a.creates, ['p2', 'p4', 'p6']);
  assert.deepEqual(b.creates, ['p0', 'p1', 'p3', 'p5', 'p7']);
});

test('a refused create moves to another target at once; any other failure pins the pod where it was tried', async () => {
  const a = new FakeTarget('a', { pods: '100' });
  const b = new FakeTarget('b', { pods: '100' });
  const m = composite(a, b);
  a.failNext.push(new TransientProviderError('QuotaExceeded', 'quota', 60_000));
  await m.createPod(podWith({}, 'moved'), ctx);
  assert.deepEqual([a.creates, b.creates], [['moved'], ['moved']]);
  assert.equal(m.placementOf({ namespace: 'ns', name: 'moved', uid: 'uid-moved' }), 'b');
  // a refused: it is passed over while its hold lasts.
  await m.createPod(podWith({}, 'next'), ctx);
  assert.equal(m.placementOf({ namespace: 'ns', name: 'next', uid: 'uid-next' }), 'b');

  const c = new FakeTarget('c', { pods: '100' });
  const d = new FakeTarget('d', { pods: '100' });
  const n = composite(c, d);
  c.failNext.push(new TransientProviderError('ArmUnavailable', 'timeout: the PUT may have landed'));
  await assert.rejects(n.createPod(podWith({}, 'stuck'), ctx), TransientProviderError);
  // Even a later refusal does not move it: a group may exist in c.
  c.failNext.push(new TransientProviderError('Throttled', 'throttled', 1_000));
  await assert.rejects(n.createPod(podWith({}, 'stuck'), ctx), TransientProviderError);
  await n.createPod(podWith({}, 'stuck'), ctx);
  assert.deepEqual([c.creates, d.creates], [['stuck', 'stuck', 'stuck'], []]);
});

test('a create its target paces (a slot in its line) stays there; new pods go to the other target meanwhile', async () => {
  let now = 1_000_000;
  const a = new FakeTarget('a', { pods: '100' });
  const b = new FakeTarget('b', { pods: '100' });
  const m = new MultiTargetProvider({
    now: () => now,
    targets: [a, b].map((p) => ({
      name: p.name,
      region: 'westus',
      provider: p,
      creationWindows: [{ count: 100, windowSeconds: 300 }],
    })),
  });
  a.failNext.push(new TransientProviderError('CreationPaced', 'window full', 20_000));
  await assert.rejects(m.createPod(podWith({}, 'waits'), ctx), /window full/);
  assert.equal(m.placementOf({ namespace: 'ns', name: 'waits', uid: 'uid-waits' }), 'a');
  for (let i = 0; i < 3; i++) await m.createPod(podWith({}, `new${i}`), ctx);
  assert.deepEqual(b.creates, ['new0', 'new1', 'new2']);
  now += 20_000;
  await m.createPod(podWith({}, 'waits'), ctx);
  assert.deepEqual(a.creates, ['waits', 'waits']);
});

test('a pod pinned by annotation stays on its target when refused; an unknown target rejects the pod', async () => {
  const a = new FakeTarget('a', { pods: '100' });
  const b = new FakeTarget('b', { pods: '100' });
  const m = composite(a, b);
  b.failNext.push(new TransientProviderError('QuotaExceeded', 'quota', 1_000));
  await assert.rejects(m.createPod(podWith({ [TARGET_ANNOTATION]: 'b' }, 'pin'), ctx), /quota/);
  await m.createPod(podWith({ [TARGET_ANNOTATION]: 'b' }, 'pin'), ctx);
  assert.deepEqual([a.creates, b.creates], [[], ['pin', 'pin']]);
  await assert.rejects(m.createPod(podWith({ [TARGET_ANNOTATION]: 'nope' }, 'x'), ctx), PodRejectedError);
  await m.createPod(podWith({ [REGION_ANNOTATION]: 'eastus' }, 'east'), ctx);
  assert.equal(m.placementOf({ namespace: 'ns', name: 'east', uid: 'uid-east' }), 'b');
});

test('after a restart the placement is read back from the targets’ lists and status pushes', async () => {
  const a = new FakeTarget('a', { pods: '100' });
  const b = new FakeTarget('b', { pods: '100' });
  b.pods.set('old', { ref: { namespace: 'ns', name: 'old', uid: 'uid-old' }, status: { phase: 'Running' } });
  const m = composite(a, b);
  const seen: string[] = [];
  m.onStatus((ref) => seen.push(ref.name));
  assert.deepEqual(
    (await m.listPods()).map((p) => p.ref.name),
    ['old'],
  );
  assert.equal(m.placementOf({ namespace: 'ns', name: 'old', uid: 'uid-old' }), 'b');
  // A create after the restart does not make a second group elsewhere.
  await m.createPod(podWith({}, 'old'), ctx);
  assert.deepEqual([a.creates, b.creates], [[], ['old']]);
  b.listener?.({ namespace: 'ns', name: 'late', uid: 'uid-late' }, { phase: 'Running' });
  assert.equal(m.placementOf({ namespace: 'ns', name: 'late', uid: 'uid-late' }), 'b');
  assert.deepEqual(seen, ['late']);
  // An unplaced pod is deleted in every target (idempotent there).
  await m.deletePod(podWith({}, 'ghost'), 0);
  assert.deepEqual([a.deletes, b.deletes], [['ghost'], ['ghost']]);
});

test('one target failing its list fails the list; the node stays Ready while any target is', async () => {
  const a = new FakeTarget('a', { pods: '100' });
  const b = new FakeTarget('b', { pods: '100' }, false);
  b.listPods = async () => {
    throw new TransientProviderError('AciUnreachable', 'connect ECONNREFUSED');
  };
  const m = composite(a, b);
  await assert.rejects(m.listPods(), /listing target b: connect ECONNREFUSED/);
  const h = await m.health();
  assert.equal(h.ok, true);
  assert.match(h.message, /target b: b down/);
  // New pods avoid the failing target.
  for (let i = 0; i < 3; i++) await m.createPod(podWith({}, `p${i}`), ctx);
  assert.deepEqual(b.creates, []);
  const down = composite(new FakeTarget('x', {}, false), new FakeTarget('y', {}, false));
  const hd = await down.health();
  assert.equal(hd.ok, false);
  assert.equal(hd.reason, 'AciUnreachable');
});

// ---- the emulator's scopes ----------------------------------------------------

test('emulator scopes: a subscription and a region have limits and quotas of their own', () => {
  const scoped = new ScopedSettings(
    parseScopes([
      { subscriptionId: 'SUB-A', quota: { containerGroups: 10 }, limits: { creations: { count: 5 } } },
      { subscriptionId: 'sub-a', region: 'East US', quota: { cores: 7 } },
    ]),
    () => ({ limits: defaultThrottleLimits(), quota: { containerGroups: 100, cores: 100 } }),
  );
  assert.deepEqual(scoped.quota(), { containerGroups: 100, cores: 100 });
  assert.deepEqual(scoped.quota({ subscriptionId: 'sub-b' }), { containerGroups: 100, cores: 100 });
  assert.deepEqual(scoped.quota({ subscriptionId: 'sub-a', region: 'westus' }), { containerGroups: 10, cores: 100 });
  assert.deepEqual(scoped.quota({ subscriptionId: 'sub-a', region: 'eastus' }), { containerGroups: 10, cores: 7 });
  // The emulator's creation limit is one window or a list of them: one window given replaces it.
  const windowsOf = (scope: { subscriptionId: string }) => [scoped.limits(scope).creations].flat();
  assert.deepEqual(windowsOf({ subscriptionId: 'sub-a' }), [{ count: 5, windowSeconds: 300 }]);
  assert.deepEqual(windowsOf({ subscriptionId: 'sub-b' })[0], { count: 100, windowSeconds: 300 });
  scoped.set([{ subscriptionId: 'sub-a', quota: { containerGroups: 1 } }]);
  assert.deepEqual(scoped.quota({ subscriptionId: 'sub-a' }), { containerGroups: 1, cores: 100 });
  // A list of windows replaces the subscription's (the emulator's limits may hold one or a list).
  const listed = new ScopedSettings(
    parseScopes([{ subscriptionId: 's', limits: { creations: [{ count: 1, windowSeconds: 2 }] } }]),
    () => ({ limits: defaultThrottleLimits(), quota: { containerGroups: 1, cores: 1 } }),
  );
  assert.deepEqual(listed.limits({ subscriptionId: 's' }).creations, [{ count: 1, windowSeconds: 2 }]);
  assert.throws(() => parseScopes([{ quota: {} }]), /scopes\[0\.subscriptionId\]/);
  assert.throws(() => parseScopes([{ subscriptionId: 's', quota: { cores: -1 } }]), /scopes\[0\.quota\.cores\]/);
});
