/**
 * The demo: a real control plane, the ACI emulator running real containers
 * (podman), the connector with the ACI provider pointed at the emulator, and a
 * sample pod answering HTTP on its pod IP. Runs until Ctrl-C, then stops all of it.
 *
 *   node dist/devcluster/demo.js [--run-root DIR] [--exit-after-check]
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { startEmulator } from '../src/emulator/index.js';
import { createPodmanRuntime } from '../src/emulator/runtimes/podman/index.js';
import { busyboxImage } from '../src/emulator/runtimes/podman/local-images.js';
import type { PodmanRuntime } from '../src/emulator/runtimes/podman/podman-runtime.js';
import { repoRoot, startCluster, stopCluster } from './cluster.js';

const { values } = parseArgs({
  options: {
    'run-root': { type: 'string' },
    // For a scripted check of the demo: stop once the sample pod answered.
    'exit-after-check': { type: 'boolean', default: false },
  },
});

const run = promisify(execFile);
const say = (line: string) => process.stdout.write(`${line}\n`);
const NODE = 'aci-connector';
const NAMESPACE = 'default';
const POD = 'hello';
const PAGE = 'Hello from a pod on the aci-connector node, running in the ACI emulator.';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function until<T>(what: string, f: () => Promise<T | undefined>, timeoutMs: number, failed?: () => string | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const problem = failed?.();
    if (problem) throw new Error(`${what}: ${problem}`);
    const v = await f().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function main(): Promise<void> {
  const runRoot = values['run-root'] ?? join(tmpdir(), 'aci-connector-demo');
  mkdirSync(runRoot, { recursive: true });
  const stops: (() => Promise<unknown>)[] = [];
  let stopping = false;
  const stopAll = async () => {
    if (stopping) return;
    stopping = true;
    say('\nstopping the demo…');
    for (const stop of stops.reverse()) await stop().catch((e: unknown) => say(`  (while stopping: ${String(e)})`));
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => void stopAll().then(() => process.exit(0)));

  try {
    say('1/5 starting the control plane (etcd, kube-apiserver, scheduler, controller-manager)…');
    const cluster = await startCluster({ runRoot });
    stops.push(() => stopCluster(cluster));
    say(`    ready in ${cluster.startSeconds.toFixed(1)} s at ${cluster.server}`);

    say('2/5 starting the ACI emulator with the podman runtime…');
    const runtime = createPodmanRuntime({ stateDir: join(runRoot, 'pm'), stopTimeoutSeconds: 2 }) as PodmanRuntime;
    const image = await busyboxImage(runtime.cli);
    const emu = await startEmulator({ runtime, stateDir: join(cluster.runDir, 'emulator') });
    stops.push(() => emu.stop());
    say(`    ARM endpoint ${emu.endpoint}, local image ${image}`);

    say('3/5 starting the connector (--provider aci, pointed at the emulator)…');
    const kubeletPort = await freePort();
    const metricsPort = await freePort();
    const logFile = join(cluster.runDir, 'logs', 'aci-connector.log');
    const connector: ChildProcess = spawn(
      process.execPath,
      [
        join(repoRoot, 'dist/src/cli/main.js'),
        '--provider', 'aci', '--node-name', NODE, '--kubeconfig', cluster.connectorKubeconfig,
        '--node-ip', '127.0.0.1', '--kubelet-port', String(kubeletPort), '--kubelet-address', '127.0.0.1',
        '--kubelet-tls-cert', cluster.kubeletServingCert, '--kubelet-tls-key', cluster.kubeletServingKey,
        '--kubelet-client-ca', cluster.caCert,
        '--metrics-port', String(metricsPort), '--metrics-address', '127.0.0.1',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          AZURE_CLIENT_ID: emu.clientId,
          AZURE_CLIENT_KEY: emu.clientSecret,
          AZURE_TENANT_ID: emu.tenantId,
          AZURE_SUBSCRIPTION_ID: emu.subscriptionId,
          ACI_RESOURCE_GROUP: 'demo',
          ACI_REGION: 'westus',
          ACI_ARM_ENDPOINT: emu.endpoint,
          AZURE_AUTHORITY_HOST: emu.authorityHost,
          ACI_CA_FILE: emu.caCertPath,
        },
      },
    );
    let exited: string | undefined;
    connector.on('exit', (code, signal) => (exited = `the connector exited (${code ?? signal}); see ${logFile}`));
    const logs: Buffer[] = [];
    connector.stdout?.on('data', (d: Buffer) => logs.push(d));
    connector.stderr?.on('data', (d: Buffer) => logs.push(d));
    stops.push(async () => {
      writeFileSync(logFile, Buffer.concat(logs));
      if (exited) return;
      const gone = new Promise((r) => connector.once('exit', r));
      connector.kill('SIGTERM');
      await gone;
    });

    const kc = new k8s.KubeConfig();
    kc.loadFromFile(cluster.kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await until('node aci-connector Ready', async () => {
      const n = await core.readNode({ name: NODE });
      return n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? true : undefined;
    }, 120_000, () => exited);
    say('    node aci-connector is Ready');

    say(`4/5 creating pod ${POD} (busybox httpd on port 80) bound to aci-connector…`);
    await until('the default ServiceAccount', () => core.readNamespacedServiceAccount({ name: 'default', namespace: NAMESPACE }).then(() => true), 60_000);
    await core.createNamespacedPod({
      namespace: NAMESPACE,
      body: {
        metadata: { name: POD, labels: { app: 'hello' } },
        spec: {
          nodeName: NODE,
          containers: [{
            name: 'web',
            image,
            command: ['sh', '-c', `echo '${PAGE}' > /www/index.html && exec httpd -f -p 80 -h /www`],
            ports: [{ containerPort: 80, name: 'http' }],
          }],
        },
      },
    });
    const pod = await until('the pod Running with an IP', async () => {
      const p = await core.readNamespacedPod({ name: POD, namespace: NAMESPACE });
      return p.status?.phase === 'Running' && p.status.podIP ? p : undefined;
    }, 300_000, () => exited);
    const url = `http://${pod.status?.podIP ?? ''}:80/`;

    say(`5/5 GET ${url}`);
    const body = await until('the pod to answer HTTP', async () => {
      const res = await fetch(url);
      return res.ok ? res.text() : undefined;
    }, 120_000, () => exited);
    say(`    ${body.trim()}`);

    // kubectl exec goes API server → the connector's kubelet API → ACI exec → the container.
    const kubectl = join(cluster.binDir, 'kubectl');
    const { stdout: served } = await run(kubectl, ['--kubeconfig', cluster.kubeconfig, 'exec', POD, '--', 'cat', '/www/index.html']);
    say(`    kubectl exec ${POD} -- cat /www/index.html: ${served.trim()}`);
    say(`
The demo is running. In another shell:

  export KUBECONFIG=${cluster.kubeconfig}
  alias kubectl=${kubectl}
  kubectl get nodes -o wide
  kubectl get pod ${POD} -o wide
  kubectl describe pod ${POD}
  kubectl logs ${POD}
  kubectl exec ${POD} -- ls /www
  curl ${url}
  kubectl create -f ${join(repoRoot, 'examples/nginx-pod-tolerations.yaml')}   # placed by the scheduler (image: nginx needs a registry)

Logs: ${join(cluster.runDir, 'logs')}. Press Ctrl-C to stop everything.`);

    if (values['exit-after-check']) {
      await stopAll();
      return;
    }
    await new Promise<never>(() => undefined);
  } catch (err) {
    say(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    await stopAll();
    process.exitCode = 1;
  }
}

void main();
