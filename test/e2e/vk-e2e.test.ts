/**
 * Virtual Kubelet's own end-to-end suite (module github.com/virtual-kubelet/virtual-kubelet, package
 * test/e2e, at the version test/vk-e2e/go.mod pins, assertions unchanged) against the connector's
 * node: with the mock provider, and with the ACI provider on the emulator's simulated runtime.
 *
 * The suite reaches the node two ways, both through the API server, which refuses loopback:
 * - nodes/NODE/proxy/{pods,runningpods/}: to the node's InternalIP. The node advertises an address
 *   in a network namespace this test creates (devcluster/netns.ts), whose front relays to the
 *   connector's kubelet port on loopback; its serving certificate names that address.
 * - pods/https:NODE:10250/proxy/{stats/summary,metrics/resource}: to the pod named after the node in
 *   the suite's namespace, which is how Virtual Kubelet's CI runs it (the kubelet in a pod named after
 *   its node). Here that pod stands for the connector process: bound to a Node object for the host
 *   machine, with the front's address as its pod IP (written through pods/status, as the host's
 *   kubelet would). The API server's pod proxy sends no credentials a kubelet accepts, so the connector lets
 *   anonymous requests in, and RBAC allows system:anonymous only nodes/stats and nodes/metrics of
 *   this node; everything else stays refused.
 * A third test runs Virtual Kubelet's own mock (the benchmark's peer) through the same fronts, pod
 * and RBAC, as the control that the harness itself lets a conforming node pass.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { CertificateAuthority, writePair } from '../../devcluster/certs.js';
import { freePort, repoRoot } from '../../devcluster/cluster.js';
import { createNetworkNamespace } from '../../devcluster/netns.js';
import { adminKubeConfig, freshNamespace, testCluster, waitFor } from '../support/cluster.js';
import { useEmulatorForFile } from './aci-emulator-env.js';
import { core, startConnector, uniqueNodeName } from './connector-process.js';
import { GRACEFUL, lostGracefulDeleteRace, parseGoTestVerbose, subtestsOf } from './vk-e2e-results.js';

const exec = promisify(execFile);
const SUITE_PARENT = 'TestEndToEnd';
/** The suite's tests at the pinned version (test/e2e/basic.go). */
const SUITE_TESTS = [
  'TestCreatePodWithMandatoryInexistentConfigMap',
  'TestCreatePodWithMandatoryInexistentSecrets',
  'TestCreatePodWithOptionalInexistentConfigMap',
  'TestCreatePodWithOptionalInexistentSecrets',
  'TestGetMetricsResource',
  'TestGetPods',
  'TestGetStatsSummary',
  'TestPodLifecycleForceDelete',
  'TestPodLifecycleGracefulDelete',
];
const KUBELET_PORT_IN_POD = 10250; // the port the suite's pod proxy names
const SUBNET = '/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/vnet/subnets/aci';

const emulator = useEmulatorForFile(`vk-e2e-${Math.random().toString(36).slice(2, 8)}`, {
  simulated: { pullMs: 20, startMs: 20 },
});

function pinnedVersion(): string {
  const mod = readFileSync(join(repoRoot, 'test/vk-e2e/go.mod'), 'utf8');
  const m = /^require github\.com\/virtual-kubelet\/virtual-kubelet (\S+)$/m.exec(mod);
  assert.ok(m?.[1], 'test/vk-e2e/go.mod pins virtual-kubelet');
  return m[1];
}

/** The suite's test binary: built by scripts/test (ACI_VK_E2E_BIN), else by test/vk-e2e/build.sh (cached). */
async function suiteBinary(): Promise<string> {
  if (process.env.ACI_VK_E2E_BIN) return process.env.ACI_VK_E2E_BIN;
  const { stdout } = await exec('bash', [join(repoRoot, 'test/vk-e2e/build.sh')], { maxBuffer: 16 * 1024 * 1024 });
  const bin = stdout.trim().split('\n').pop();
  assert.ok(bin, 'build.sh printed the binary');
  return bin;
}

/** A serving certificate for the kubelet port that names the namespace's address (the API server verifies it). */
async function servingPair(address: string): Promise<{ cert: string; key: string }> {
  const pki = dirname(testCluster().caCert);
  const ca = await CertificateAuthority.load({
    cert: readFileSync(join(pki, 'ca.crt'), 'utf8'),
    key: readFileSync(join(pki, 'ca.key'), 'utf8'),
  });
  const dir = mkdtempSync(join(testCluster().runDir, 'vk-e2e-serving-'));
  return writePair(
    dir,
    'kubelet',
    await ca.issue({
      commonName: 'aci-connector-kubelet',
      server: true,
      serverNames: ['localhost'],
      serverIps: [address, '127.0.0.1'],
    }),
  );
}

/** Lets the API server's credential-less pod proxy read this node's stats and resource metrics, and nothing else. */
async function allowAnonymousStats(t: TestContext, nodeName: string): Promise<void> {
  const rbac = adminKubeConfig().makeApiClient(k8s.RbacAuthorizationV1Api);
  const name = `vk-e2e-anonymous-stats-${nodeName}`;
  await rbac.createClusterRole({
    body: {
      metadata: { name },
      rules: [
        { apiGroups: [''], resources: ['nodes/stats', 'nodes/metrics'], resourceNames: [nodeName], verbs: ['get'] },
      ],
    },
  });
  await rbac.createClusterRoleBinding({
    body: {
      metadata: { name },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'system:anonymous' }],
    },
  });
  t.after(async () => {
    await rbac.deleteClusterRoleBinding({ name }).catch(() => undefined);
    await rbac.deleteClusterRole({ name }).catch(() => undefined);
  });
}

/** The pod named after the node that the suite's pod proxy reaches: the connector's stand-in, at the front's address. */
async function connectorPod(t: TestContext, namespace: string, nodeName: string, address: string): Promise<void> {
  const hostNode = `host-${nodeName}`;
  // The machine the connector runs on; nothing heartbeats for it, so the pod tolerates its taints.
  await core().createNode({ body: { metadata: { name: hostNode } } });
  t.after(() =>
    core()
      .deleteNode({ name: hostNode })
      .catch(() => undefined),
  );
  await core().createNamespacedPod({
    namespace,
    body: {
      metadata: { name: nodeName, labels: { app: 'aci-connector' } },
      spec: {
        nodeName: hostNode,
        containers: [{ name: 'connector', image: 'aci-connector:dev' }],
        tolerations: [{ operator: 'Exists' }],
      },
    },
  });
  const pod = await core().readNamespacedPod({ name: nodeName, namespace });
  const now = new Date();
  pod.status = {
    ...pod.status,
    phase: 'Running',
    hostIP: address,
    hostIPs: [{ ip: address }],
    podIP: address,
    podIPs: [{ ip: address }],
    startTime: now,
    conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now }],
  };
  await core().replaceNamespacedPodStatus({ name: nodeName, namespace, body: pod });
}

interface SuiteRun {
  code: number | null;
  output: string;
}

function runSuite(bin: string, namespace: string, nodeName: string, only?: string): Promise<SuiteRun> {
  return new Promise((resolve, reject) => {
    const args = [
      '-test.v',
      only ? `-test.run=^${SUITE_PARENT}$/^${only}$` : `-test.run=^${SUITE_PARENT}$`,
      '-test.timeout=15m',
      `-kubeconfig=${testCluster().kubeconfig}`,
      `-namespace=${namespace}`,
      `-node-name=${nodeName}`,
      '-watch-timeout=2m',
    ];
    const p = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    p.stdout.on('data', (d: Buffer) => (output += d.toString()));
    p.stderr.on('data', (d: Buffer) => (output += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, output }));
  });
}

/** What runs the node under test: started once the namespace, its certificate and RBAC exist. */
type StartNode = (
  nodeName: string,
  address: string,
  serving: { cert: string; key: string },
) => Promise<{ port: number; output: () => string }>;

async function suiteAgainst(t: TestContext, startNode: StartNode): Promise<void> {
  const bin = await suiteBinary();
  const nodeName = uniqueNodeName('vk-e2e');
  const namespace = await freshNamespace(t, 'vk-e2e');
  const ns = await createNetworkNamespace(testCluster().runDir);
  t.after(() => ns.teardown());
  const serving = await servingPair(ns.address);
  await allowAnonymousStats(t, nodeName);

  const node = await startNode(nodeName, ns.address, serving);
  await ns.front(node.port, node.port);
  if (node.port !== KUBELET_PORT_IN_POD) await ns.front(KUBELET_PORT_IN_POD, node.port);
  await connectorPod(t, namespace, nodeName, ns.address);

  const run = await runSuite(bin, namespace, nodeName);
  const result = parseGoTestVerbose(run.output);
  const subtests = subtestsOf(result, SUITE_PARENT);
  let failed = subtests.filter((s) => s.verdict !== 'PASS');
  if (lostGracefulDeleteRace(result, SUITE_PARENT, failed)) {
    // The suite's own race, not the node's: see lostGracefulDeleteRace. One rerun of that test alone.
    t.diagnostic(`${GRACEFUL}: the suite's watch started after the node's final delete (basic.go:256); rerunning it`);
    const again = parseGoTestVerbose((await runSuite(bin, namespace, nodeName, GRACEFUL)).output);
    failed = subtestsOf(again, SUITE_PARENT).filter((s) => s.verdict !== 'PASS');
    for (const [name, logs] of again.failureLogs) result.failureLogs.set(name, logs);
    result.verdicts.set(SUITE_PARENT, again.verdicts.get(SUITE_PARENT) ?? 'FAIL');
    run.code = failed.length === 0 ? 0 : run.code;
  }
  const why = failed
    .map((s) => `${s.name} ${s.verdict}: ${(result.failureLogs.get(`${SUITE_PARENT}/${s.name}`) ?? []).join(' | ')}`)
    .join('\n');
  const passed = subtests.filter((s) => s.verdict === 'PASS').length;
  t.diagnostic(`Virtual Kubelet ${pinnedVersion()} e2e suite: ${passed} of ${subtests.length} passed`);
  assert.deepEqual(
    subtests.map((s) => s.name).sort(),
    SUITE_TESTS,
    `the suite ran its ${SUITE_TESTS.length} tests:\n${run.output.slice(-4000)}`,
  );
  assert.deepEqual(failed, [], `failed:\n${why}\n\nnode output (tail):\n${node.output().slice(-3000)}`);
  assert.equal(result.verdicts.get(SUITE_PARENT), 'PASS');
  assert.equal(run.code, 0, run.output.slice(-2000));
}

/** The connector (its kubelet API on loopback), with the suite's node address and certificate. */
function connectorNode(t: TestContext, extraArgs: string[], env: Record<string, string> = {}): StartNode {
  return async (nodeName, address, serving) => {
    const h = await startConnector(t, {
      nodeName,
      env,
      extraArgs: [
        '--node-ip',
        address,
        '--kubelet-tls-cert',
        serving.cert,
        '--kubelet-tls-key',
        serving.key,
        '--kubelet-anonymous-auth',
        ...extraArgs,
      ],
    });
    const port = await waitFor('the node to advertise its kubelet port', async () => {
      const p = (await core().readNode({ name: h.nodeName })).status?.daemonEndpoints?.kubeletEndpoint?.Port;
      return p && p > 0 ? p : undefined;
    });
    return { port, output: () => h.output() };
  };
}

/** Virtual Kubelet itself with its mock provider (the benchmark's peer, bench/peers/build.sh), as the control. */
function virtualKubeletMock(t: TestContext): StartNode {
  return async (nodeName, address, serving) => {
    const bin =
      process.env.ACI_VK_BIN ??
      (await exec('bash', [join(repoRoot, 'bench/peers/build.sh'), 'vk'], { maxBuffer: 16 * 1024 * 1024 })).stdout
        .trim()
        .split('\n')
        .pop();
    assert.ok(bin, 'bench/peers/build.sh printed the binary');
    const dir = mkdtempSync(join(testCluster().runDir, 'vk-mock-'));
    const config = join(dir, 'mock.json');
    writeFileSync(config, JSON.stringify({ [nodeName]: { cpu: '20', memory: '100Gi', pods: '110' } }));
    const [port, metricsPort] = await Promise.all([freePort(), freePort()]);
    // VK's kubelet API binds every address (":PORT"); the suite reaches it only through the front.
    const proc = spawn(
      bin,
      [
        '--provider',
        'mock',
        '--provider-config',
        config,
        '--nodename',
        nodeName,
        '--kubeconfig',
        testCluster().kubeconfig,
        '--metrics-addr',
        `127.0.0.1:${metricsPort}`,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          KUBELET_PORT: String(port),
          VKUBELET_POD_IP: address,
          APISERVER_CERT_LOCATION: serving.cert,
          APISERVER_KEY_LOCATION: serving.key,
        },
      },
    );
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((r) => proc.once('exit', r));
    t.after(async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      await core()
        .deleteNode({ name: nodeName })
        .catch(() => undefined);
    });
    await waitFor(`Virtual Kubelet's node ${nodeName}`, () =>
      core()
        .readNode({ name: nodeName })
        .then(
          () => true,
          () => false,
        ),
    );
    return { port, output: () => out };
  };
}

test(
  `Virtual Kubelet's e2e suite passes 9 of 9 against the connector with the mock provider`,
  { timeout: 8 * 60_000 },
  async (t) => {
    await suiteAgainst(t, connectorNode(t, []));
  },
);

test(
  `Virtual Kubelet's e2e suite passes 9 of 9 against the connector with the ACI provider on the emulator`,
  { timeout: 8 * 60_000 },
  async (t) => {
    const createsBefore = emulator.emu.stats().callsByOperation['ContainerGroups_CreateOrUpdate'] ?? 0;
    // In a VNet, as the suite needs: it waits for every pod to have a pod IP, and ACI gives a group
    // without declared ports (the suite's pods declare none) an IP only in a subnet.
    await suiteAgainst(t, connectorNode(t, ['--provider', 'aci'], { ACI_SUBNET_IDS: SUBNET }));
    // The suite's pods really went through the emulator (the file's emulator env reaches the connector).
    const creates = (emulator.emu.stats().callsByOperation['ContainerGroups_CreateOrUpdate'] ?? 0) - createsBefore;
    assert.ok(creates > 0, `the suite's pods were created as container groups in the emulator (${creates} PUTs)`);
  },
);

test(
  `control: Virtual Kubelet's own mock passes the same suite through the same fronts`,
  { timeout: 8 * 60_000 },
  async (t) => {
    await suiteAgainst(t, virtualKubeletMock(t));
  },
);
