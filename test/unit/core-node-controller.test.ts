/**
 * The node controller against an in-memory node API (registration, lease, Ready from health,
 * re-registration), with the mock provider: milliseconds each. node-registration.test.ts and
 * node-death.test.ts prove the same against the real control plane.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { V1Lease, V1Node, V1NodeStatus } from '@kubernetes/client-node';
import { silentLogger } from '../../src/common/logger.js';
import { NodeController, type NodeApi } from '../../src/core/node-controller.js';
import type { HealthStatus } from '../../src/core/provider.js';
import { MockProvider } from '../../src/providers/mock/index.js';
import { waitFor } from '../support/wait.js';

function apiError(code: number): Error & { code: number } {
  return Object.assign(new Error(`HTTP ${code}`), { code });
}

class FakeNodeApi implements NodeApi {
  readonly nodes = new Map<string, V1Node>();
  readonly leases = new Map<string, V1Lease>();
  readonly calls: string[] = [];
  statusPatches: V1NodeStatus[] = [];
  private watchers: Array<{ update(n: V1Node): void; delete(n: V1Node): void }> = [];
  private uid = 0;
  private rv = 0;

  async serverVersion(): Promise<string> {
    return 'v1.36.3+build';
  }
  async readNode(name: string): Promise<V1Node> {
    this.calls.push('readNode');
    const n = this.nodes.get(name);
    if (!n) throw apiError(404);
    return structuredClone(n);
  }
  async createNode(node: V1Node): Promise<void> {
    this.calls.push('createNode');
    const name = node.metadata?.name ?? '';
    if (this.nodes.has(name)) throw apiError(409);
    this.nodes.set(name, { ...structuredClone(node), metadata: { ...node.metadata, uid: `node-uid-${++this.uid}` } });
  }
  async patchNodeLabels(name: string, labels: Record<string, string>): Promise<void> {
    this.calls.push('patchNodeLabels');
    const n = this.nodes.get(name);
    if (!n) throw apiError(404);
    n.metadata = { ...n.metadata, labels: { ...n.metadata?.labels, ...labels } };
  }
  async patchNodeStatus(name: string, status: V1NodeStatus): Promise<void> {
    this.calls.push('patchNodeStatus');
    const n = this.nodes.get(name);
    if (!n) throw apiError(404);
    n.status = structuredClone(status);
    this.statusPatches.push(structuredClone(status));
    for (const w of this.watchers) w.update(structuredClone(n));
  }
  async readLease(name: string): Promise<V1Lease> {
    this.calls.push('readLease');
    const l = this.leases.get(name);
    if (!l) throw apiError(404);
    return structuredClone(l);
  }
  async replaceLease(name: string, lease: V1Lease): Promise<V1Lease> {
    this.calls.push('replaceLease');
    const cur = this.leases.get(name);
    if (!cur) throw apiError(404);
    if (cur.metadata?.resourceVersion !== lease.metadata?.resourceVersion) throw apiError(409);
    const next = { ...structuredClone(lease), metadata: { ...lease.metadata, resourceVersion: String(++this.rv) } };
    this.leases.set(name, next);
    return structuredClone(next);
  }
  async createLease(lease: V1Lease): Promise<V1Lease> {
    this.calls.push('createLease');
    const name = lease.metadata?.name ?? '';
    if (this.leases.has(name)) throw apiError(409);
    const next = { ...structuredClone(lease), metadata: { ...lease.metadata, resourceVersion: String(++this.rv) } };
    this.leases.set(name, next);
    return structuredClone(next);
  }
  async watchNode(
    _name: string,
    on: { update(n: V1Node): void; delete(n: V1Node): void },
  ): Promise<{ stop(): Promise<void> }> {
    this.watchers.push(on);
    return { stop: async () => void (this.watchers = this.watchers.filter((w) => w !== on)) };
  }

  /** `kubectl delete node`: the node goes, and its Lease with it (owner reference, garbage collector). */
  deleteNode(name: string): void {
    const n = this.nodes.get(name);
    if (!n) return;
    this.nodes.delete(name);
    this.leases.delete(name);
    for (const w of this.watchers) w.delete(n);
  }
}

function start(
  t: TestContext,
  opts: { statusCheckMs?: number; leaseRenewMs?: number; startupGate?: () => HealthStatus | undefined } = {},
) {
  const api = new FakeNodeApi();
  const provider = new MockProvider({ nodeName: 'vn', clusterId: 'c1' });
  const ctl = new NodeController({
    api,
    provider,
    nodeName: 'vn',
    nodeIP: '10.0.0.9',
    taints: [{ key: 'virtual-kubelet.io/provider', value: 'azure', effect: 'NoSchedule' }],
    kubeletPort: 10250,
    version: '1.2.3',
    log: silentLogger(),
    leaseRenewMs: opts.leaseRenewMs ?? 60_000,
    statusCheckMs: opts.statusCheckMs ?? 60_000,
    registerBackoff: { baseMs: 5, maxMs: 20, jitter: 0 },
    ...(opts.startupGate ? { startupGate: opts.startupGate } : {}),
  });
  t.after(async () => {
    await ctl.stop();
    await provider.close();
  });
  return { api, provider, ctl };
}

const ready = (s: V1NodeStatus | undefined) => s?.conditions?.find((c) => c.type === 'Ready');
const until = <T>(what: string, check: () => T | undefined | null | false) =>
  waitFor(what, check, { timeoutMs: 5_000, intervalMs: 2 });

test('registration: the node with its labels, taints, addresses, versions and Ready; a Lease owned by the node', async (t) => {
  const { api, ctl } = start(t);
  await ctl.start();
  assert.equal(ctl.ready, true);
  const node = api.nodes.get('vn');
  assert.ok(node, 'the node was created');
  assert.equal(node.metadata?.labels?.['type'], 'virtual-kubelet');
  assert.equal(node.metadata?.labels?.['kubernetes.io/hostname'], 'vn');
  assert.equal(node.metadata?.labels?.['topology.kubernetes.io/region'], 'mock-region-1');
  assert.deepEqual(node.spec?.taints, [{ key: 'virtual-kubelet.io/provider', value: 'azure', effect: 'NoSchedule' }]);
  assert.deepEqual(node.status?.addresses, [
    { type: 'InternalIP', address: '10.0.0.9' },
    { type: 'Hostname', address: 'vn' },
  ]);
  assert.equal(node.status?.nodeInfo?.kubeletVersion, 'v1.36.3-aci-connector-1.2.3');
  assert.equal(node.status?.capacity?.['pods'], '5000');
  assert.equal(node.status?.daemonEndpoints?.kubeletEndpoint?.Port, 10250);
  assert.equal(ready(node.status)?.status, 'True');
  assert.equal(ready(node.status)?.reason, 'KubeletReady');
  const lease = api.leases.get('vn');
  assert.equal(lease?.spec?.holderIdentity, 'vn');
  assert.deepEqual(
    lease?.metadata?.ownerReferences?.map((o) => o.uid),
    [node.metadata?.uid],
  );
});

test('an existing node is adopted: our labels added, others kept, no second node', async (t) => {
  const { api, ctl } = start(t);
  await api.createNode({ metadata: { name: 'vn', labels: { team: 'blue' } }, spec: {} });
  api.calls.length = 0;
  await ctl.start();
  assert.ok(!api.calls.includes('createNode'));
  assert.equal(api.nodes.get('vn')?.metadata?.labels?.['team'], 'blue');
  assert.equal(api.nodes.get('vn')?.metadata?.labels?.['type'], 'virtual-kubelet');
});

test('lease renewals: one PUT each, renewTime moving forward, no reads after the first', async (t) => {
  const { api, ctl } = start(t, { leaseRenewMs: 5 });
  await ctl.start();
  const readsAtStart = api.calls.filter((c) => c === 'readLease').length;
  const first = api.leases.get('vn')?.spec?.renewTime?.getTime() ?? 0;
  await until('three renewals', () => api.calls.filter((c) => c === 'replaceLease').length >= 3);
  const renewed = api.leases.get('vn')?.spec?.renewTime?.getTime() ?? 0;
  assert.ok(renewed >= first, 'renewTime moves forward');
  assert.ok(Number(api.leases.get('vn')?.metadata?.resourceVersion) >= 4, 'each renewal replaced the Lease');
  assert.equal(
    api.calls.filter((c) => c === 'readLease').length,
    readsAtStart,
    'the Lease from the last renewal is reused, not read again',
  );
});

test('Ready follows the provider health, with its reason and message', async (t) => {
  const { api, provider, ctl } = start(t, { statusCheckMs: 5 });
  await ctl.start();
  provider.setHealth({ ok: false, reason: 'BackendDown', message: 'the backend is on fire' });
  await until('Ready False', () => ready(api.nodes.get('vn')?.status)?.status === 'False');
  const r = ready(api.nodes.get('vn')?.status);
  assert.equal(r?.reason, 'BackendDown');
  assert.equal(r?.message, 'the backend is on fire');
  assert.equal(ctl.health?.ok, false);
  const writesWhileDown = api.statusPatches.length;
  provider.setHealth(undefined);
  await until('Ready True again', () => ready(api.nodes.get('vn')?.status)?.status === 'True');
  assert.equal(ready(api.nodes.get('vn')?.status)?.reason, 'KubeletReady');
  assert.ok(api.statusPatches.length > writesWhileDown);
  // Unchanged health is not written again on every check (only at the refresh interval).
  const settled = api.statusPatches.length;
  provider.setHealth({ ok: false, reason: 'Again', message: 'down again' });
  await until('the next change written', () => ready(api.nodes.get('vn')?.status)?.reason === 'Again');
  assert.equal(api.statusPatches.length, settled + 1, 'one write per change');
});

test('a deleted node is registered again, with a new Lease owned by the new node', async (t) => {
  const { api, ctl } = start(t);
  await ctl.start();
  const oldUid = api.nodes.get('vn')?.metadata?.uid;
  api.deleteNode('vn');
  await until('node re-created', () => api.nodes.get('vn'));
  await until('lease re-created', () => api.leases.get('vn'));
  const node = api.nodes.get('vn');
  assert.notEqual(node?.metadata?.uid, oldUid);
  assert.equal(ready(node?.status)?.status, 'True');
  assert.deepEqual(
    api.leases.get('vn')?.metadata?.ownerReferences?.map((o) => o.uid),
    [node?.metadata?.uid],
  );
});

test('start-up gate: a healthy provider leaves the node NotReady with the gate reason until the core has synced', async (t) => {
  let gate: { ok: boolean; reason: string; message: string } | undefined = {
    ok: false,
    reason: 'ProviderUnavailable',
    message: 'the provider is down',
  };
  const { api, provider, ctl } = start(t, { startupGate: () => gate });
  await ctl.start();
  const created = api.statusPatches.length;
  assert.equal(ready(api.nodes.get('vn')?.status)?.status, 'False');
  assert.equal(ready(api.nodes.get('vn')?.status)?.reason, 'ProviderUnavailable');
  assert.equal(ready(api.nodes.get('vn')?.status)?.message, 'the provider is down');
  // The provider's own reason names the backend's problem: it wins over the gate.
  provider.setHealth({ ok: false, reason: 'AzureCredentialInvalid', message: 'bad secret' });
  await ctl.refresh();
  assert.equal(ready(api.nodes.get('vn')?.status)?.reason, 'AzureCredentialInvalid');
  provider.setHealth(undefined);
  gate = undefined;
  await ctl.refresh();
  assert.equal(ready(api.nodes.get('vn')?.status)?.status, 'True');
  assert.equal(ready(api.nodes.get('vn')?.status)?.reason, 'KubeletReady');
  assert.ok(api.statusPatches.length >= created + 2);
});

test('a failed first status write is retried: start() resolves once it lands', async (t) => {
  const { api, ctl } = start(t);
  let failures = 2;
  const patch = api.patchNodeStatus.bind(api);
  api.patchNodeStatus = async (name, status) => {
    if (failures-- > 0) throw apiError(500);
    return patch(name, status);
  };
  await ctl.start();
  assert.equal(ctl.ready, true);
  assert.equal(api.statusPatches.length, 1, 'the write that landed');
  assert.equal(ready(api.nodes.get('vn')?.status)?.status, 'True');
});
