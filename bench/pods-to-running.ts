/**
 * Benchmark: how fast pods bound to the connector's node reach Running, and
 * what it costs in API server writes.
 *
 *   node dist/bench/pods-to-running.js [--pods 1000] [--qps 50] [--burst 100] [--workers 50]
 *
 * It starts its own dev cluster and a connector with the mock provider, creates
 * the pods (bound by nodeName, so the scheduler is not involved) from a client
 * of its own, and reports from the connector's metrics and a watch of the pods.
 * Figures, not assertions: these machines are noisy, so speed is measured here
 * and never asserted in tests.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { repoRoot, startCluster, stopCluster } from '../devcluster/cluster.js';
import { nodeKubeconfig } from '../devcluster/node-identity.js';

const { values } = parseArgs({
  options: {
    pods: { type: 'string', default: '1000' },
    qps: { type: 'string', default: '50' },
    burst: { type: 'string', default: '100' },
    workers: { type: 'string', default: '50' },
    'create-concurrency': { type: 'string', default: '20' },
  },
});
const podCount = Number(values.pods);
const nodeName = 'bench-node';

function metricsText(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}

/** Sums every sample of a metric (all label sets). */
function metricSum(text: string, name: string, labelFilter = ''): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name) || line.startsWith('#')) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== '{' && rest[0] !== ' ') continue;
    if (labelFilter && !line.includes(labelFilter)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

async function main(): Promise<void> {
  const runRoot = mkdtempSync(join(tmpdir(), 'aci-bench-'));
  const cluster = await startCluster({ runRoot, log: (l) => console.error(`# ${l}`) });
  const connectorDir = join(runRoot, 'connector');
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, 'dist/src/cli/main.js'),
      '--provider',
      'mock',
      '--kubeconfig',
      await nodeKubeconfig(cluster, nodeName),
      '--node-name',
      nodeName,
      '--node-ip',
      '127.0.0.1',
      '--metrics-port',
      '0',
      '--metrics-address',
      '127.0.0.1',
      '--kubelet-port',
      '0',
      '--kube-api-qps',
      String(values.qps),
      '--kube-api-burst',
      String(values.burst),
      '--workers',
      String(values.workers),
      '--log-level',
      'info',
      '--mock-state-file',
      join(runRoot, 'mock-state.json'),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ACI_TEST_RUN_DIR: connectorDir } },
  );
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const port = await waitForValue(
      () => {
        const m = /"port":(\d+),"msg":"operations endpoint listening"/.exec(out);
        return m ? Number(m[1]) : undefined;
      },
      60_000,
      () => out,
    );
    await waitForValue(
      () => (out.includes('"msg":"pod controller running"') ? true : undefined),
      60_000,
      () => out,
    );

    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const ns = 'bench';
    await core.createNamespace({ body: { metadata: { name: ns } } });
    await waitForValue(
      () =>
        core.readNamespacedServiceAccount({ name: 'default', namespace: ns }).then(
          () => true,
          () => undefined,
        ),
      60_000,
    );

    // Watch first, so no transition is missed.
    const created = new Map<string, number>();
    const running = new Map<string, number>();
    const watch = new k8s.Watch(kc);
    let allRunning: () => void = () => undefined;
    const done = new Promise<void>((r) => (allRunning = r));
    const req = await watch.watch(
      `/api/v1/namespaces/${ns}/pods`,
      {},
      (_type, pod: k8s.V1Pod) => {
        const name = pod.metadata?.name ?? '';
        if (pod.status?.phase === 'Running' && !running.has(name)) {
          running.set(name, Date.now());
          if (running.size === podCount) allRunning();
        }
      },
      () => undefined,
    );

    const before = await metricsText(port);
    const t0 = Date.now();
    let next = 0;
    const concurrency = Number(values['create-concurrency']);
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < podCount) {
          const i = next++;
          const name = `p-${i}`;
          created.set(name, Date.now());
          await core.createNamespacedPod({
            namespace: ns,
            body: { metadata: { name }, spec: { nodeName, containers: [{ name: 'c', image: 'bench/app:1' }] } },
          });
        }
      }),
    );
    const tCreated = Date.now();
    await Promise.race([
      done,
      new Promise((_, rej) =>
        setTimeout(() => rej(new Error(`only ${running.size}/${podCount} Running after 10 min`)), 600_000),
      ),
    ]);
    const tRunning = Date.now();
    (req as { abort?: () => void }).abort?.();
    const after = await metricsText(port);

    const latencies = [...running.entries()].map(([n, t]) => t - (created.get(n) ?? t)).sort((a, b) => a - b);
    const statusWrites =
      metricSum(after, 'aci_connector_pod_status_writes_total') -
      metricSum(before, 'aci_connector_pod_status_writes_total');
    const apiReqs =
      metricSum(after, 'aci_connector_kube_api_requests_total') -
      metricSum(before, 'aci_connector_kube_api_requests_total');
    const result = {
      pods: podCount,
      qps: Number(values.qps),
      burst: Number(values.burst),
      workers: Number(values.workers),
      createSeconds: (tCreated - t0) / 1000,
      createRatePerSecond: podCount / ((tCreated - t0) / 1000),
      allRunningSeconds: (tRunning - t0) / 1000,
      runningRatePerSecond: podCount / ((tRunning - t0) / 1000),
      createToRunningMs: {
        p50: percentile(latencies, 50),
        p90: percentile(latencies, 90),
        p99: percentile(latencies, 99),
        max: latencies[latencies.length - 1],
      },
      statusWritesPerPod: statusWrites / podCount,
      connectorApiRequestsPerPod: apiReqs / podCount,
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    child.kill('SIGTERM');
    await stopCluster(cluster);
    rmSync(runRoot, { recursive: true, force: true });
  }
}

async function waitForValue<T>(
  f: () => T | undefined | Promise<T | undefined>,
  ms: number,
  context?: () => string,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out${context ? `:\n${context().slice(-2000)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.stack : err);
  process.exit(1);
});
