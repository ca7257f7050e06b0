/**
 * Runs the real aci-connector binary (mock provider) as a child process against
 * the shared dev cluster, for the end-to-end tests of the node and pods.
 * Every connector gets a unique node name and its own mock state file, and is
 * killed (and its Node deleted) when the test ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import type { V1Pod } from '@kubernetes/client-node';
import { nodeKubeconfig } from '../../devcluster/node-identity.js';
import { readMockState, type MockState } from '../../src/providers/mock/index.js';
import { adminKubeConfig, testCluster, waitFor } from '../support/cluster.js';

export const CONNECTOR_MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

export interface ConnectorHandle {
  nodeName: string;
  stateFile: string;
  healthFile: string;
  dir: string;
  proc: ChildProcess;
  /** stdout + stderr so far. */
  output(): string;
  metricsPort(): number | undefined;
  /** Resolves with the exit code (or signal) once the process ended. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Starts it again with the same node name, state file and flags (after a kill). */
  restart(): Promise<ConnectorHandle>;
  state(): MockState;
}

export interface StartOptions {
  nodeName?: string;
  extraArgs?: string[];
  /** Reuse a folder (state and health files) from an earlier connector. */
  dir?: string;
  /** Wait until the pod controller runs (default true). */
  waitRunning?: boolean;
  /** --kubeconfig to pass (default: the dev cluster's connector kubeconfig); null: none (TLS bootstrap). */
  kubeconfig?: string | null;
  /** Environment for this connector, over the file's (see setConnectorEnv); undefined removes a variable. */
  env?: Record<string, string | undefined>;
  /** Options for node itself, before the connector's script (--inspect, say). */
  nodeArgs?: string[];
}

/** The environment every connector of this test file gets (the file's emulator, say); never written into process.env. */
let fileEnv: Record<string, string> = {};

export function setConnectorEnv(env: Record<string, string>): void {
  fileEnv = { ...env };
}

export function uniqueNodeName(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function startConnector(t: TestContext, opts: StartOptions = {}): Promise<ConnectorHandle> {
  const nodeName = opts.nodeName ?? uniqueNodeName('vk');
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), `aci-connector-${nodeName}-`));
  const stateFile = join(dir, 'mock-state.json');
  const healthFile = join(dir, 'unhealthy');
  const cluster = testCluster();
  const args = [
    ...(opts.nodeArgs ?? []),
    CONNECTOR_MAIN,
    '--provider',
    'mock',
    // The node's own identity (system:node:<name>), held to its objects by the Node authorizer;
    // null: no --kubeconfig (the TLS bootstrap tests pass their own flags).
    ...(opts.kubeconfig === null ? [] : ['--kubeconfig', opts.kubeconfig ?? (await nodeKubeconfig(cluster, nodeName))]),
    '--node-name',
    nodeName,
    '--node-ip',
    '127.0.0.1',
    '--metrics-port',
    '0',
    '--metrics-address',
    '127.0.0.1',
    '--mock-state-file',
    stateFile,
    '--mock-health-file',
    healthFile,
    '--kubelet-port',
    '0',
    '--kubelet-address',
    '127.0.0.1',
    '--kubelet-tls-cert',
    cluster.kubeletServingCert,
    '--kubelet-tls-key',
    cluster.kubeletServingKey,
    '--kubelet-client-ca',
    cluster.caCert,
    ...(opts.extraArgs ?? []),
  ];
  const proc = spawn(process.execPath, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...fileEnv, ...opts.env, ACI_TEST_RUN_DIR: cluster.runDir },
  });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    proc.on('exit', (code, signal) => resolve({ code, signal }));
  });
  let ended = false;
  void exited.then(() => (ended = true));

  const handle: ConnectorHandle = {
    nodeName,
    stateFile,
    healthFile,
    dir,
    proc,
    output: () => out,
    metricsPort: () => {
      const m = /"port":(\d+),"msg":"operations endpoint listening"/.exec(out);
      return m ? Number(m[1]) : undefined;
    },
    exited,
    restart: () => startConnector(t, { ...opts, nodeName, dir }),
    state: () => readMockState(stateFile),
  };

  if (!opts.dir) {
    t.after(async () => {
      // Every connector that used this folder is gone by now (each kills itself below).
      const core = adminKubeConfig().makeApiClient(k8s.CoreV1Api);
      await core.deleteNode({ name: nodeName }).catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    });
  }
  t.after(async () => {
    if (!ended) {
      proc.kill('SIGKILL');
      await exited;
    }
  });

  if (opts.waitRunning ?? true) {
    await waitFor(
      `connector ${nodeName} to run its pod controller`,
      () => {
        if (ended) throw new Error(`connector exited early:\n${out}`);
        return out.includes('"msg":"pod controller running"');
      },
      { timeoutMs: 60_000, intervalMs: 50 },
    );
  }
  return handle;
}

/** A pod bound straight to the node (no scheduler involved). */
export function boundPod(
  nodeName: string,
  name: string,
  extra: Partial<V1Pod> & { annotations?: Record<string, string> } = {},
): V1Pod {
  const { annotations, ...rest } = extra;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, annotations, ...(rest.metadata ?? {}) },
    spec: {
      nodeName,
      containers: [{ name: 'main', image: 'registry.example/app:1' }],
      ...(rest.spec ?? {}),
    },
  };
}

/** Toleration of the default taint plus a selector that makes this node the only fit. */
export function placeOn(nodeName: string): Pick<NonNullable<V1Pod['spec']>, 'tolerations' | 'nodeSelector'> {
  return {
    nodeSelector: { 'kubernetes.io/hostname': nodeName },
    tolerations: [{ key: 'azure.com/aci', operator: 'Exists', effect: 'NoSchedule' }],
  };
}

/** Pods of one namespace that the mock backend holds for this node. */
export function backendPods(h: ConnectorHandle, namespace: string): MockState['pods'][string][] {
  return Object.values(h.state().pods).filter((p) => p.owner.node === h.nodeName && p.ref.namespace === namespace);
}

export function core(): k8s.CoreV1Api {
  return adminKubeConfig().makeApiClient(k8s.CoreV1Api);
}
