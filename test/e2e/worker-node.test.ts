/**
 * The in-cluster path as users take it, on a real worker node (containerd and a kubelet built from
 * the pinned module, devcluster/worker): the image built from a clean clone is imported into the
 * worker's containerd, `kubectl create -f examples/aci-connector.yaml` (its Secret holding the
 * emulator's endpoint and credentials) runs the connector as a pod there, the `aci-connector` node
 * becomes Ready and the seed's nginx example runs on it; `kubectl set image` rolls it.
 *
 * This file starts a control plane of its own: the node name `aci-connector` and the worker (a
 * schedulable node) must not meet other files' connectors and pods on the shared one.
 *
 * The dev cluster has no pod network and no kube-proxy (the API server and the emulator listen on
 * the host's loopback), so the manifest is adapted for this machine only, and nothing else:
 * hostNetwork with the API server's loopback address in place of the kubernetes Service, the
 * listeners on loopback ports, the emulator's CA mounted, the local image with pullPolicy Never,
 * and a toleration of the worker's own taint.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { freePort, repoRoot, startCluster, stopCluster, type ClusterInfo } from '../../devcluster/cluster.js';
import { importImage, startWorker, stopWorker, WORKER_TAINT, type WorkerInfo } from '../../devcluster/worker/worker.js';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import { buildImageFromCleanClone, imagePodman } from '../support/connector-image.js';
import { chartDir, isolatedHelm } from '../support/helm.js';
import { adaptForWorker, EMULATOR_CA_DIR, type WorkerAdaptation } from '../support/worker-adapt.js';
import { waitFor } from '../support/wait.js';
import { azureEnv } from './aci-emulator-env.js';

const run = promisify(execFile);
const RG = `worker-${Math.random().toString(36).slice(2, 8)}`;
const IMAGE = 'localhost/aci-connector:worker-e2e';
const IMAGE_NEXT = 'localhost/aci-connector:worker-e2e-next';
const podman = imagePodman();

let cluster: ClusterInfo | undefined;
let worker: WorkerInfo | undefined;
let emu: Emulator | undefined;
let core: k8s.CoreV1Api;
let apps: k8s.AppsV1Api;

function ready<T>(v: T | undefined, what: string): T {
  assert.ok(v, `${what} started (see before())`);
  return v;
}

async function kubectl(args: string[], input?: string): Promise<string> {
  const c = ready(cluster, 'the cluster');
  const child = run(join(c.binDir, 'kubectl'), ['--kubeconfig', c.kubeconfig, ...args], {
    maxBuffer: 16 * 1024 * 1024,
  });
  if (input !== undefined) child.child.stdin?.end(input);
  return (await child).stdout;
}

before(async () => {
  const built = buildImageFromCleanClone(podman, IMAGE);
  built.catch(() => undefined); // awaited below; a failure must not be an unhandled rejection meanwhile
  // Under the test run's folder, so the runner's last check sees anything left running.
  cluster = await startCluster({
    runRoot: process.env.ACI_TEST_RUN_DIR,
    log: (l) => console.log(`# devcluster: ${l}`),
  });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(cluster.kubeconfig);
  core = kc.makeApiClient(k8s.CoreV1Api);
  apps = kc.makeApiClient(k8s.AppsV1Api);
  emu = await startEmulator({ simulated: { pullMs: 50, startMs: 50 } });
  worker = await startWorker(cluster, { log: (l) => console.log(`# worker: ${l}`) });
  const image = await built;
  // The same image under a second tag, for `kubectl set image`.
  await podman.run(['tag', image.image, IMAGE_NEXT]);
  const dir = mkdtempSync(join(tmpdir(), 'aci-worker-image-'));
  try {
    const archive = join(dir, 'image.tar');
    await podman.run(
      ['save', '--format', 'docker-archive', '--multi-image-archive', '-o', archive, image.image, IMAGE_NEXT],
      { timeoutMs: 600_000 },
    );
    await importImage(worker, archive);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const { helm, dispose } = isolatedHelm();

after(async () => {
  dispose();
  if (worker) await stopWorker(worker);
  await emu?.stop();
  if (cluster) await stopCluster(cluster);
});

function adaptation(ports: { kubelet: number; metrics: number }, image = IMAGE): WorkerAdaptation {
  return {
    image,
    apiPort: new URL(ready(cluster, 'the cluster').server).port,
    kubeletPort: ports.kubelet,
    metricsPort: ports.metrics,
    caSecret: 'aci-emulator-ca',
    toleration: WORKER_TAINT,
  };
}

async function nodeReady(name: string): Promise<k8s.V1Node | undefined> {
  const n = await core.readNode({ name }).catch(() => undefined);
  return n?.status?.conditions?.find((x) => x.type === 'Ready')?.status === 'True' ? n : undefined;
}

async function connectorPods(): Promise<k8s.V1Pod[]> {
  return (await core.listNamespacedPod({ namespace: 'kube-system', labelSelector: 'app=aci-connector' })).items;
}

test('the worker is a normal node: Ready, its kubelet the pinned version, containerd its runtime', async () => {
  const w = ready(worker, 'the worker');
  const node = await waitFor(`worker ${w.nodeName} Ready`, () => nodeReady(w.nodeName), { timeoutMs: 60_000 });
  const pinned = /^KUBE_VERSION=(\S+)/m.exec(readFileSync(join(repoRoot, 'devcluster/kube/versions.env'), 'utf8'))?.[1];
  assert.equal(node.status?.nodeInfo?.kubeletVersion, pinned);
  assert.match(node.status?.nodeInfo?.containerRuntimeVersion ?? '', /^containerd:\/\//);
  assert.equal(node.metadata?.labels?.type, undefined, 'not a virtual node');
  assert.ok(
    node.spec?.taints?.some((t) => t.key === WORKER_TAINT.key),
    'tainted, so only pods meant for it land there',
  );
});

test('kubectl create -f examples/aci-connector.yaml runs the connector as a pod on the worker: the aci-connector node is Ready and the nginx example runs on it', async () => {
  const w = ready(worker, 'the worker');
  const e = ready(emu, 'the emulator');
  // The Secret the example names, with the emulator's endpoint and credentials (ACI_CA_FILE is the mounted CA).
  await core.createNamespacedSecret({
    namespace: 'kube-system',
    body: {
      metadata: { name: 'aci-connector-credentials' },
      stringData: { ...azureEnv(e, RG), ACI_CA_FILE: `${EMULATOR_CA_DIR}/ca.crt` },
    },
  });
  await core.createNamespacedSecret({
    namespace: 'kube-system',
    body: { metadata: { name: 'aci-emulator-ca' }, stringData: { 'ca.crt': e.caPem } },
  });
  const [kubelet, metrics] = await Promise.all([freePort(), freePort()]);
  const manifest = readFileSync(join(repoRoot, 'examples/aci-connector.yaml'), 'utf8');
  await kubectl(['create', '-f', '-'], adaptForWorker(manifest, adaptation({ kubelet, metrics })));

  const pod = await waitFor(
    'the connector pod Running and Ready on the worker',
    async () => {
      const [p] = (await connectorPods()).filter(
        (x) =>
          x.status?.phase === 'Running' && x.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
      );
      return p;
    },
    { timeoutMs: 180_000 },
  );
  assert.equal(pod.spec?.nodeName, w.nodeName);
  assert.equal(
    pod.status?.containerStatuses?.[0]?.image?.endsWith('aci-connector:worker-e2e'),
    true,
    pod.status?.containerStatuses?.[0]?.image,
  );
  const node = await waitFor('node aci-connector Ready', () => nodeReady('aci-connector'), { timeoutMs: 120_000 });
  assert.equal(node.metadata?.labels?.type, 'virtual-kubelet');

  // The seed's nginx example, as is.
  await kubectl(['create', '-f', join(repoRoot, 'examples/nginx-pod.yaml')]);
  const nginx = await waitFor(
    'the nginx example Running on aci-connector',
    async () => {
      const p = await core.readNamespacedPod({ name: 'nginx', namespace: 'default' });
      return p.status?.phase === 'Running' ? p : undefined;
    },
    { timeoutMs: 120_000 },
  );
  assert.equal(nginx.spec?.nodeName, 'aci-connector');
  assert.ok(nginx.status?.podIP, 'the pod has the container group’s IP');
});

test('kubectl set image rolls the connector to a new tag, and the node stays Ready', async () => {
  const before = (await connectorPods()).map((p) => p.metadata?.name);
  await kubectl(['-n', 'kube-system', 'set', 'image', 'deploy/aci-connector', `aci-connector=${IMAGE_NEXT}`]);
  await kubectl(['-n', 'kube-system', 'rollout', 'status', 'deploy/aci-connector', '--timeout=180s']);
  const pods = await waitFor(
    'one new connector pod Running on the new tag',
    async () => {
      const list = (await connectorPods()).filter((p) => p.metadata?.deletionTimestamp === undefined);
      return list.length === 1 && !before.includes(list[0]?.metadata?.name) && list[0]?.status?.phase === 'Running'
        ? list
        : undefined;
    },
    { timeoutMs: 180_000 },
  );
  assert.equal(pods[0]?.spec?.containers[0]?.image, IMAGE_NEXT);
  const dep = await apps.readNamespacedDeployment({ name: 'aci-connector', namespace: 'kube-system' });
  assert.equal(dep.status?.updatedReplicas, 1);
  await waitFor('node aci-connector Ready after the roll', () => nodeReady('aci-connector'), { timeoutMs: 120_000 });
  const nginx = await core.readNamespacedPod({ name: 'nginx', namespace: 'default' });
  assert.equal(nginx.status?.phase, 'Running', 'the nginx pod kept running across the roll');
});

test('helm install runs the chart the same way: its node is Ready and runs a pod', async () => {
  const w = ready(worker, 'the worker');
  const c = ready(cluster, 'the cluster');
  const e = ready(emu, 'the emulator');
  const [kubelet, metrics] = await Promise.all([freePort(), freePort()]);
  // The original chart's --set env.… line, plus the emulator's endpoints (extraEnv).
  const seed = [
    `env.azureClientId=${e.clientId}`,
    `env.azureClientKey=${e.clientSecret}`,
    `env.azureTenantId=${e.tenantId}`,
    `env.azureSubscriptionId=${e.subscriptionId}`,
    `env.aciResourceGroup=${RG}`,
    'env.aciRegion=westus',
  ].join(',');
  const extraEnv = [
    ['ACI_ARM_ENDPOINT', e.endpoint],
    ['AZURE_AUTHORITY_HOST', e.authorityHost],
    ['ACI_CA_FILE', `${EMULATOR_CA_DIR}/ca.crt`],
  ]
    .map(([name, value], i) => `extraEnv[${i}].name=${name},extraEnv[${i}].value=${value}`)
    .join(',');
  const postRenderer = fileURLToPath(new URL('../support/worker-adapt.js', import.meta.url));
  const r = await helm([
    'install',
    'aci-helm',
    chartDir,
    '--kubeconfig',
    c.kubeconfig,
    '--namespace',
    'kube-system',
    '--set',
    seed,
    '--set',
    extraEnv,
    '--set',
    'nodeName=aci-helm',
    '--wait',
    '--timeout',
    '4m',
    '--post-renderer',
    process.execPath,
    '--post-renderer-args',
    postRenderer,
    '--post-renderer-args',
    JSON.stringify(adaptation({ kubelet, metrics })),
  ]);
  assert.equal(r.code, 0, `helm install: ${r.stderr}`);
  const [pod] = (await core.listNamespacedPod({ namespace: 'kube-system', labelSelector: 'app=aci-helm' })).items;
  assert.equal(pod?.spec?.nodeName, w.nodeName, "the chart's connector runs on the worker");
  const node = await waitFor('node aci-helm Ready', () => nodeReady('aci-helm'), { timeoutMs: 120_000 });
  assert.equal(node.metadata?.labels?.type, 'virtual-kubelet');
  await core.createNamespacedPod({
    namespace: 'default',
    body: {
      metadata: { name: 'nginx-helm' },
      spec: { nodeName: 'aci-helm', containers: [{ name: 'nginx', image: 'nginx', ports: [{ containerPort: 80 }] }] },
    },
  });
  await waitFor(
    'a pod Running on aci-helm',
    async () =>
      (await core.readNamespacedPod({ name: 'nginx-helm', namespace: 'default' })).status?.phase === 'Running',
    { timeoutMs: 120_000 },
  );
});
