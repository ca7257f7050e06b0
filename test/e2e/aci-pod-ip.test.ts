/**
 * A pod IP for every ACI pod, as a kubelet gives one, through the real control plane
 * (its endpointslice controller) and the emulator: in a VNet (a subnet configured) a
 * pod that declares no port still gets a private IP, and a Service selecting it lists
 * that IP in its EndpointSlice. Outside a VNet ACI cannot give such a pod an IP, and an
 * Event says why.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { ACI_TAGS } from '../../src/providers/aci/index.js';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { adminKubeConfig, freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector } from './connector-process.js';

// EndpointSlices refuse loopback addresses (API validation), so the simulated groups here get
// addresses from a private range instead. Nothing contacts them: the test only reads the API.
const aci = useEmulatorForFile('pod-ip', { simulated: { pullMs: 20, startMs: 20, ipPrefix: '10.244' } });
const SUBNET = '/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci';

const portless = (node: string, name: string): k8s.V1Pod =>
  boundPod(node, name, {
    metadata: { name, labels: { app: name } },
    spec: { automountServiceAccountToken: false, containers: [{ name: 'app', image: 'busybox' }] },
  });

const running = (ns: string, name: string): Promise<k8s.V1Pod> =>
  waitFor(`${name} Running`, async () => {
    const p = await core().readNamespacedPod({ name, namespace: ns });
    return p.status?.phase === 'Running' ? p : undefined;
  });

test(
  'in a VNet a pod without a containerPort gets a private pod IP, and its Service’s EndpointSlice lists it',
  { timeout: 300_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'aci-pod-ip');
    const c = await startConnector(t, { extraArgs: ['--provider', 'aci'], env: { ACI_SUBNET_IDS: SUBNET } });
    await core().createNamespacedPod({ namespace: ns, body: portless(c.nodeName, 'ipless') });
    const pod = await running(ns, 'ipless');
    const ip = pod.status?.podIP;
    assert.match(ip ?? '', /^10\.244\.\d+\.\d+$/, 'a private address of the emulated VNet');
    assert.deepEqual(
      pod.status?.podIPs?.map((x) => x.ip),
      [ip],
    );

    const [listed] = (await aci.inspector.arm.listGroups()).filter(
      (g) => g.tags?.[ACI_TAGS.podUid] === pod.metadata?.uid,
    );
    // A list carries no addresses (as on ACI): read the group.
    const group = await aci.inspector.arm.getGroup(listed?.name ?? '');
    assert.equal(group?.ipAddress?.type, 'Private');
    assert.deepEqual(
      group?.subnetIds?.map((s) => s.id),
      [SUBNET],
    );
    assert.equal(group?.ipAddress?.ip, ip);

    await core().createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'ipless' },
        spec: { selector: { app: 'ipless' }, ports: [{ port: 80, targetPort: 8080 }] },
      },
    });
    const discovery = adminKubeConfig().makeApiClient(k8s.DiscoveryV1Api);
    const endpoint = await waitFor(
      'the EndpointSlice to list the pod',
      async () => {
        const slices = await discovery.listNamespacedEndpointSlice({
          namespace: ns,
          labelSelector: 'kubernetes.io/service-name=ipless',
        });
        return slices.items.flatMap((s) => s.endpoints ?? []).find((e) => e.targetRef?.name === 'ipless');
      },
      { timeoutMs: 120_000 },
    );
    assert.deepEqual(endpoint.addresses, [ip]);
    assert.equal(endpoint.nodeName, c.nodeName);
    assert.equal(endpoint.conditions?.ready, true);
  },
);

test(
  'outside a VNet ACI gives a pod without ports no IP, and a NoPodIP Event says why',
  { timeout: 300_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'aci-no-ip');
    const c = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    await core().createNamespacedPod({ namespace: ns, body: portless(c.nodeName, 'public-ipless') });
    const pod = await running(ns, 'public-ipless');
    assert.equal(pod.status?.podIP, undefined);
    const event = await waitFor('a NoPodIP event', async () => {
      const list = await core().listNamespacedEvent({
        namespace: ns,
        fieldSelector: 'involvedObject.name=public-ipless',
      });
      return list.items.find((e) => e.reason === 'NoPodIP');
    });
    assert.equal(event.type, 'Warning');
    assert.match(event.message ?? '', /declares no containerPort.*ACI_SUBNET_IDS/);
  },
);

test(
  'the ACI node carries the facts schedulers and charts read: region, zone, os labels and ephemeral-storage',
  { timeout: 120_000 },
  async (t) => {
    const c = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    const node = await waitFor('the node with its capacity', async () => {
      const n = await core().readNode({ name: c.nodeName });
      return n.status?.capacity?.['ephemeral-storage'] ? n : undefined;
    });
    const labels = node.metadata?.labels ?? {};
    assert.equal(labels['topology.kubernetes.io/region'], 'westus');
    assert.equal(labels['topology.kubernetes.io/zone'], '0');
    assert.equal(labels['kubernetes.io/os'], 'linux');
    assert.equal(labels['beta.kubernetes.io/os'], 'linux');
    assert.equal(labels['kubernetes.io/arch'], 'amd64');
    assert.equal(labels.type, 'virtual-kubelet');
    const pods = Number(node.status?.capacity?.pods?.replace(/k$/, '000'));
    assert.ok(pods > 0, String(node.status?.capacity?.pods));
    // 50 GB of local disk per group; the API server may print the quantity in another unit.
    assert.ok(node.status?.allocatable?.['ephemeral-storage'], 'allocatable has ephemeral-storage too');
    assert.equal(node.status?.allocatable?.['ephemeral-storage'], node.status?.capacity?.['ephemeral-storage']);
  },
);
