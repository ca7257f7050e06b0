/**
 * kubectl top and the HPA on the virtual node, all real parts: metrics-server
 * v0.8.0 (built from its module, devcluster/metrics-server) behind the API
 * server's aggregation layer scrapes the connector's /metrics/resource; the
 * ACI provider reads Azure Monitor's Metrics_List from the emulator, whose
 * figures come from `podman stats` (podman runtime) or its rules (simulated).
 *
 * - a podman pod that sleeps, then spins: `kubectl top pod` shows its CPU rise;
 * - a Deployment whose pods spin scales from 1 to at least 3 under an HPA
 *   (target 30 % of the CPU request), and back to 1 once its pods idle.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as k8s from '@kubernetes/client-node';
import { startMetricsServer, type MetricsServer } from '../../devcluster/metrics-server/metrics-server.js';
import { startEmulator, type Emulator } from '../../src/emulator/index.js';
import { podmanFixture } from '../emulator/podman-fixtures.js';
import { adminKubeConfig, freshNamespace, testCluster, waitFor } from '../support/cluster.js';
import { boundPod, core, placeOn, startConnector } from './connector-process.js';
import { kubectl } from './kubelet-api-support.js';
import { azureEnv } from './aci-emulator-env.js';

let metricsServer: MetricsServer | undefined;
let podmanEmu: Emulator | undefined;
let simEmu: Emulator | undefined;
let fx: Awaited<ReturnType<typeof podmanFixture>> | undefined;
const saved = { ...process.env };

before(async () => {
  metricsServer = await startMetricsServer(testCluster());
  fx = await podmanFixture();
  podmanEmu = await startEmulator({ runtime: fx.runtime });
  simEmu = await startEmulator();
});

after(async () => {
  await metricsServer?.stop();
  if (podmanEmu) await podmanEmu.stop();
  else await fx?.runtime.close();
  await simEmu?.stop();
  process.env = saved;
});

/** Points the next connector at an emulator, reading Azure Monitor every 5 s (not the default 30). */
function useEmulator(emu: Emulator, prefix: string): void {
  Object.assign(process.env, azureEnv(emu, `${prefix}-${Math.random().toString(36).slice(2, 8)}`), {
    ACI_METRICS_REFRESH_SECONDS: '5',
  });
}

/** `kubectl top pod` CPU in millicores, or undefined while metrics-server has none. */
async function topMillicores(ns: string, pod: string): Promise<number | undefined> {
  const r = await kubectl(['top', 'pod', pod, '-n', ns, '--no-headers']);
  if (r.code !== 0) return undefined;
  const m = /^\S+\s+(\d+)m\s+(\d+)(Ki|Mi|Gi)\s*$/m.exec(r.stdout);
  return m ? Number(m[1]) : undefined;
}

test('kubectl top pod shows a podman pod’s CPU rising while it spins', { timeout: 600_000 }, async (t) => {
  useEmulator(podmanEmu!, 'top-podman');
  const ns = await freshNamespace(t, 'top');
  const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
  await core().createNamespacedPod({
    namespace: ns,
    body: boundPod(h.nodeName, 'spinner', {
      spec: {
        containers: [
          {
            name: 'main',
            image: fx!.image,
            // Idle first, so the first figures are low; then spin on the half core it may use.
            command: ['sh', '-c', 'sleep 60; while :; do :; done'],
            resources: { requests: { cpu: '500m', memory: '128Mi' }, limits: { cpu: '500m', memory: '128Mi' } },
          },
        ],
      },
    }),
  });
  await waitFor(
    'spinner Running',
    async () => (await core().readNamespacedPod({ name: 'spinner', namespace: ns })).status?.phase === 'Running',
    { timeoutMs: 300_000 },
  );
  const idle = await waitFor('kubectl top pod to show the pod', () => topMillicores(ns, 'spinner'), {
    timeoutMs: 120_000,
    intervalMs: 2_000,
  });
  t.diagnostic(`while sleeping: ${idle}m`);
  assert.ok(idle < 100, `a sleeping container uses next to no CPU (got ${idle}m)`);
  const busy = await waitFor(
    'kubectl top pod to show the spinning CPU',
    async () => {
      const m = await topMillicores(ns, 'spinner');
      return m !== undefined && m >= 300 ? m : undefined;
    },
    { timeoutMs: 300_000, intervalMs: 3_000 },
  );
  t.diagnostic(`while spinning: ${busy}m (limit 500m)`);
  assert.ok(busy <= 600, `no more than its limit, give or take the sampling (got ${busy}m)`);
  // The node's view through the same path: kubectl top node reads node_cpu_usage_seconds_total.
  const node = await kubectl(['top', 'node', h.nodeName, '--no-headers']);
  assert.equal(node.code, 0, node.stderr);
  assert.match(node.stdout, new RegExp(`^${h.nodeName}\\s+\\d+m`));
});

test(
  'an HPA scales a Deployment on the node from 1 to at least 3 under load, and back to 1',
  { timeout: 900_000 },
  async (t) => {
    useEmulator(simEmu!, 'hpa-sim');
    const ns = await freshNamespace(t, 'hpa');
    const h = await startConnector(t, { extraArgs: ['--provider', 'aci'] });
    const apps = adminKubeConfig().makeApiClient(k8s.AppsV1Api);
    const autoscaling = adminKubeConfig().makeApiClient(k8s.AutoscalingV2Api);
    const container = (command: string[]): k8s.V1Container => ({
      name: 'main',
      image: 'busybox',
      command,
      resources: { requests: { cpu: '200m', memory: '128Mi' }, limits: { cpu: '200m', memory: '128Mi' } },
    });
    await apps.createNamespacedDeployment({
      namespace: ns,
      body: {
        metadata: { name: 'burner' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'burner' } },
          template: {
            metadata: { labels: { app: 'burner' } },
            // The simulated runtime runs a spinning command at its CPU limit (100 % of the request).
            spec: { ...placeOn(h.nodeName), containers: [container(['sh', '-c', 'while :; do :; done'])] },
          },
        },
      },
    });
    await autoscaling.createNamespacedHorizontalPodAutoscaler({
      namespace: ns,
      body: {
        metadata: { name: 'burner' },
        spec: {
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'burner' },
          minReplicas: 1,
          maxReplicas: 4,
          metrics: [
            { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 30 } } },
          ],
          behavior: {
            scaleUp: { stabilizationWindowSeconds: 0, policies: [{ type: 'Pods', value: 4, periodSeconds: 5 }] },
            scaleDown: { stabilizationWindowSeconds: 5, policies: [{ type: 'Percent', value: 100, periodSeconds: 5 }] },
          },
        },
      },
    });
    const hpa = () => autoscaling.readNamespacedHorizontalPodAutoscaler({ name: 'burner', namespace: ns });
    const up = await waitFor(
      'the HPA to scale the Deployment to at least 3 running pods',
      async () => {
        const d = await apps.readNamespacedDeployment({ name: 'burner', namespace: ns });
        return (d.spec?.replicas ?? 0) >= 3 && (d.status?.readyReplicas ?? 0) >= 3 ? d : undefined;
      },
      { timeoutMs: 400_000, intervalMs: 2_000 },
    );
    const status = (await hpa()).status;
    t.diagnostic(
      `scaled up to ${up.spec?.replicas} replicas; HPA CPU ${JSON.stringify(status?.currentMetrics?.[0]?.resource?.current)}`,
    );
    assert.ok(
      (status?.currentMetrics?.[0]?.resource?.current?.averageUtilization ?? 0) > 30,
      'the HPA saw utilization above its target',
    );
    const pods = await core().listNamespacedPod({ namespace: ns, labelSelector: 'app=burner' });
    assert.ok(
      pods.items.filter((p) => p.status?.phase === 'Running').every((p) => p.spec?.nodeName === h.nodeName),
      'every replica runs on the virtual node',
    );

    // The load ends: a new revision idles (1 % of its request).
    await apps.patchNamespacedDeployment(
      {
        name: 'burner',
        namespace: ns,
        body: [{ op: 'replace', path: '/spec/template/spec/containers/0/command', value: ['sleep', '3600'] }],
      },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.JsonPatch),
    );
    await waitFor(
      'the HPA to scale the Deployment back to 1',
      async () => {
        const d = await apps.readNamespacedDeployment({ name: 'burner', namespace: ns });
        return d.spec?.replicas === 1 ? d : undefined;
      },
      { timeoutMs: 400_000, intervalMs: 2_000 },
    );
    const down = (await hpa()).status;
    t.diagnostic(`scaled down; HPA CPU ${JSON.stringify(down?.currentMetrics?.[0]?.resource?.current)}`);
    assert.ok(
      (down?.currentMetrics?.[0]?.resource?.current?.averageUtilization ?? 100) < 30,
      'the HPA saw utilization below its target',
    );
  },
);
