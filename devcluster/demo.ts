/**
 * The demo: a real control plane, the ACI emulator running real containers
 * (podman), the connector with the ACI provider pointed at the emulator, and a
 * sample pod answering HTTP on its pod IP. Runs until Ctrl-C, then stops all of it.
 *
 *   node dist/devcluster/demo.js [--run-root DIR] [--exit-after-check] [--image IMAGE] [--help]
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import * as k8s from '@kubernetes/client-node';
import { startEmulator } from '../src/emulator/index.js';
import { createPodmanRuntime } from '../src/emulator/runtimes/podman/index.js';
import { busyboxImage } from '../src/emulator/runtimes/podman/local-images.js';
import type { PodmanRuntime } from '../src/emulator/runtimes/podman/podman-runtime.js';
import { freePort, repoRoot, startCluster, stopCluster } from './cluster.js';
import { errorMessage } from '../src/common/errors.js';

// One text for `scripts/demo --help` (which prints it before installing anything) and this file.
const USAGE = readFileSync(join(repoRoot, 'devcluster', 'demo-usage.txt'), 'utf8');

function options(): { 'run-root'?: string; 'exit-after-check': boolean; image?: string } {
  try {
    const { values } = parseArgs({
      options: {
        'run-root': { type: 'string' },
        'exit-after-check': { type: 'boolean', default: false },
        image: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    if (values.help) {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    return values;
  } catch (e) {
    process.stderr.write(`demo: ${errorMessage(e)}\n\n${USAGE}`);
    process.exit(2);
  }
}
const values = options();

const run = promisify(execFile);
const say = (line: string) => process.stdout.write(`${line}\n`);
const NODE = 'aci-connector';
const NAMESPACE = 'default';
const POD = 'hello';
const PAGE = 'Hello from a pod on the aci-connector node, running in the ACI emulator.';

async function until<T>(
  what: string,
  f: () => Promise<T | undefined>,
  timeoutMs: number,
  failed?: () => string | undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const problem = failed?.();
    if (problem) throw new Error(`${what}: ${problem}`);
    const v = await f().catch((e: unknown) => {
      if (e instanceof PodCannotStart) throw e;
      return undefined;
    });
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** Waiting reasons after which a pod makes no progress without a change by someone. */
const STUCK = new Set([
  'CreateContainerError',
  'CreateContainerConfigError',
  'InvalidImageName',
  'ErrImagePull',
  'ImagePullBackOff',
  'CrashLoopBackOff',
  'RunContainerError',
]);

/**
 * Waits for the sample pod to run with an IP, showing its newest Warning event as it
 * comes, and gives up as soon as the pod cannot progress, with the reason.
 */
async function waitForPod(core: k8s.CoreV1Api, exited: () => string | undefined): Promise<k8s.V1Pod> {
  let shown = '';
  let warning = '';
  return until(
    'the pod Running with an IP',
    async () => {
      const events = await core
        .listNamespacedEvent({ namespace: NAMESPACE, fieldSelector: `involvedObject.name=${POD},type=Warning` })
        .catch(() => undefined);
      const newest = events?.items.sort((a, b) => eventTime(a) - eventTime(b)).pop();
      if (newest) {
        warning = `${newest.reason ?? 'Warning'}: ${newest.message ?? ''}`;
        if (warning !== shown) say(`    warning: ${warning}`);
        shown = warning;
      }
      const p = await core.readNamespacedPod({ name: POD, namespace: NAMESPACE });
      if (p.status?.phase === 'Running' && p.status.podIP) return p;
      const waiting = [...(p.status?.initContainerStatuses ?? []), ...(p.status?.containerStatuses ?? [])]
        .map((c) => c.state?.waiting)
        .find((w) => w?.reason && STUCK.has(w.reason));
      if (p.status?.phase === 'Failed' || p.status?.phase === 'Succeeded' || waiting) {
        const why = waiting
          ? `${waiting.reason ?? ''}: ${waiting.message ?? ''}`
          : `${p.status?.reason ?? p.status?.phase ?? ''}: ${p.status?.message ?? ''}`;
        throw new PodCannotStart(
          `pod ${POD} cannot start (${why.trim()})${warning ? `; newest warning: ${warning}` : ''}`,
        );
      }
      return undefined;
    },
    300_000,
    exited,
  );
}

function eventTime(e: k8s.CoreV1Event): number {
  const t = e.lastTimestamp ?? e.eventTime ?? e.metadata.creationTimestamp;
  return t ? new Date(t).getTime() : 0;
}

class PodCannotStart extends Error {
  override readonly name = 'PodCannotStart';
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
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const)
    process.once(sig, () => void stopAll().then(() => process.exit(0)));

  const demoStart = Date.now();
  let stepStart = Date.now();
  let stepName = '';
  const step = (line: string) => {
    if (stepName) say(`    ${stepName} took ${((Date.now() - stepStart) / 1000).toFixed(1)} s`);
    stepName = line.slice(0, 3);
    stepStart = Date.now();
    if (line) say(line);
  };
  try {
    step('1/5 starting the control plane (etcd, kube-apiserver, scheduler, controller-manager)…');
    const cluster = await startCluster({ runRoot });
    stops.push(() => stopCluster(cluster));
    say(`    ready in ${cluster.startSeconds.toFixed(1)} s at ${cluster.server}`);

    step('2/5 starting the ACI emulator with the podman runtime…');
    const runtime = createPodmanRuntime({ stateDir: join(runRoot, 'pm'), stopTimeoutSeconds: 2 }) as PodmanRuntime;
    const image = await busyboxImage(runtime.cli);
    const emu = await startEmulator({ runtime, stateDir: join(cluster.runDir, 'emulator') });
    stops.push(() => emu.stop());
    say(`    ARM endpoint ${emu.endpoint}, local image ${image}`);

    step('3/5 starting the connector (--provider aci, pointed at the emulator)…');
    const kubeletPort = await freePort();
    const metricsPort = await freePort();
    const logFile = join(cluster.runDir, 'logs', 'aci-connector.log');
    const connector: ChildProcess = spawn(
      process.execPath,
      [
        join(repoRoot, 'dist/src/cli/main.js'),
        '--provider',
        'aci',
        '--node-name',
        NODE,
        '--kubeconfig',
        cluster.connectorKubeconfig,
        '--node-ip',
        '127.0.0.1',
        '--kubelet-port',
        String(kubeletPort),
        '--kubelet-address',
        '127.0.0.1',
        '--kubelet-tls-cert',
        cluster.kubeletServingCert,
        '--kubelet-tls-key',
        cluster.kubeletServingKey,
        '--kubelet-client-ca',
        cluster.caCert,
        '--metrics-port',
        String(metricsPort),
        '--metrics-address',
        '127.0.0.1',
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
    await until(
      'node aci-connector Ready',
      async () => {
        const n = await core.readNode({ name: NODE });
        return n.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True' ? true : undefined;
      },
      120_000,
      () => exited,
    );
    say('    node aci-connector is Ready');

    step(`4/5 creating pod ${POD} (busybox httpd on port 80) bound to aci-connector…`);
    await until(
      'the default ServiceAccount',
      () => core.readNamespacedServiceAccount({ name: 'default', namespace: NAMESPACE }).then(() => true),
      60_000,
    );
    await core.createNamespacedPod({
      namespace: NAMESPACE,
      body: {
        metadata: { name: POD, labels: { app: 'hello' } },
        spec: {
          nodeName: NODE,
          containers: [
            {
              name: 'web',
              image: values.image ?? image,
              command: ['sh', '-c', `echo '${PAGE}' > /www/index.html && exec httpd -f -p 80 -h /www`],
              ports: [{ containerPort: 80, name: 'http' }],
            },
          ],
        },
      },
    });
    const pod = await waitForPod(core, () => exited);
    const url = `http://${pod.status?.podIP ?? ''}:80/`;

    step(`5/5 GET ${url}`);
    const body = await until(
      'the pod to answer HTTP',
      async () => {
        const res = await fetch(url);
        return res.ok ? res.text() : undefined;
      },
      120_000,
      () => exited,
    );
    say(`    ${body.trim()}`);

    // kubectl exec goes API server → the connector's kubelet API → ACI exec → the container.
    const kubectl = join(cluster.binDir, 'kubectl');
    const { stdout: served } = await run(kubectl, [
      '--kubeconfig',
      cluster.kubeconfig,
      'exec',
      POD,
      '--',
      'cat',
      '/www/index.html',
    ]);
    say(`    kubectl exec ${POD} -- cat /www/index.html: ${served.trim()}`);
    step('');
    say(`all steps took ${((Date.now() - demoStart) / 1000).toFixed(1)} s`);
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
    say(`demo failed: ${errorMessage(err)}`);
    await stopAll();
    process.exitCode = 1;
  }
}

void main();
