/**
 * The systems the benchmark runs side by side: how each is started against the dev
 * cluster (loopback only), and what it can tell about its provider (pods left, ARM calls).
 */
import { execFile, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, repoRoot, type ClusterInfo } from '../../devcluster/cluster.js';
import { nodeKubeconfig } from '../../devcluster/node-identity.js';
import { readMockState } from '../../src/providers/mock/index.js';
import type { EmulatorOptions, EmulatorStats } from '../../src/emulator/index.js';

const run = promisify(execFile);

export const SYSTEM_IDS = ['ceiling', 'mock', 'mock-qps1000', 'aci', 'aci-arm-limits', 'kwok', 'vk'] as const;
export type SystemId = (typeof SYSTEM_IDS)[number];
export const DEFAULT_SYSTEMS: SystemId[] = ['ceiling', 'mock', 'mock-qps1000', 'aci', 'kwok', 'vk'];

export const LABELS: Record<SystemId, string> = {
  ceiling: 'ceiling (raw client, 64 concurrent)',
  mock: 'aci-connector mock, defaults',
  'mock-qps1000': 'aci-connector mock, --kube-api-qps 1000',
  aci: 'aci-connector ACI on emulator, throttling off',
  'aci-arm-limits': "aci-connector ACI on emulator, ARM's limits",
  kwok: 'KWOK v0.8.0',
  vk: 'Virtual Kubelet v1.14.1 mock',
};

export interface AgentHandle {
  proc: ChildProcess;
  /** ms epoch of the spawn. */
  startedAt: number;
  output(): string;
  /** Pods the provider still holds for this node; undefined where it cannot be seen from outside. */
  providerPods(): Promise<number | undefined>;
  /** Emulator stats (ACI systems only). */
  armStats(): Promise<EmulatorStats | undefined>;
  stop(): Promise<void>;
}

export interface SystemContext {
  cluster: ClusterInfo;
  nodeName: string;
  dir: string;
  /** Binaries of the Go peers, when built. */
  peers: Partial<Record<'kwok' | 'vk', string>>;
}

export interface SystemDef {
  id: SystemId;
  label: string;
  /** The agent manages a Node that must exist before it starts (KWOK does not register one). */
  preCreateNode: boolean;
  start(ctx: SystemContext): Promise<AgentHandle>;
}

/** Every agent and emulator process still running, so an interrupted run can end them. */
export const liveProcesses = new Set<ChildProcess>();

function track(proc: ChildProcess): ChildProcess {
  liveProcesses.add(proc);
  proc.once('exit', () => liveProcesses.delete(proc));
  return proc;
}

function collect(proc: ChildProcess): () => string {
  let out = '';
  const add = (d: Buffer) => {
    out += d.toString();
    if (out.length > 2_000_000) out = out.slice(-1_000_000); // keep the tail of chatty agents
  };
  proc.stdout?.on('data', add);
  proc.stderr?.on('data', add);
  return () => out;
}

async function terminate(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  proc.kill('SIGTERM');
  const t = setTimeout(() => proc.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(t);
}

function handle(
  proc: ChildProcess,
  startedAt: number,
  extra: Partial<Pick<AgentHandle, 'providerPods' | 'armStats'>> & { cleanup?: () => Promise<void> } = {},
): AgentHandle {
  track(proc);
  const output = collect(proc);
  return {
    proc,
    startedAt,
    output,
    providerPods: extra.providerPods ?? (async () => undefined),
    armStats: extra.armStats ?? (async () => undefined),
    stop: async () => {
      await terminate(proc);
      await extra.cleanup?.();
    },
  };
}

const BENCH_DIST = join(repoRoot, 'dist/bench');
const CONNECTOR_MAIN = join(repoRoot, 'dist/src/cli/main.js');

async function connectorArgs(ctx: SystemContext, provider: 'mock' | 'aci', extra: string[]): Promise<string[]> {
  const c = ctx.cluster;
  return [
    CONNECTOR_MAIN,
    '--provider',
    provider,
    '--kubeconfig',
    // The node's own identity (system:node:<name>): the Node authorizer holds it to this node.
    await nodeKubeconfig(c, ctx.nodeName),
    '--node-name',
    ctx.nodeName,
    '--node-ip',
    '127.0.0.1',
    '--metrics-port',
    '0',
    '--metrics-address',
    '127.0.0.1',
    '--kubelet-port',
    '0',
    '--kubelet-address',
    '127.0.0.1',
    '--kubelet-tls-cert',
    c.kubeletServingCert,
    '--kubelet-tls-key',
    c.kubeletServingKey,
    '--kubelet-client-ca',
    c.caCert,
    '--log-level',
    'info',
    ...(provider === 'mock' ? ['--mock-state-file', join(ctx.dir, 'mock-state.json')] : []),
    ...extra,
  ];
}

function mockSystem(id: SystemId, extra: string[]): SystemDef {
  return {
    id,
    label: LABELS[id],
    preCreateNode: false,
    start: async (ctx) => {
      const startedAt = Date.now();
      const proc = spawn(process.execPath, await connectorArgs(ctx, 'mock', extra), {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ACI_TEST_RUN_DIR: ctx.dir },
      });
      const stateFile = join(ctx.dir, 'mock-state.json');
      return handle(proc, startedAt, {
        providerPods: async () => {
          try {
            return Object.values(readMockState(stateFile).pods).filter((p) => p.owner.node === ctx.nodeName).length;
          } catch {
            return undefined; // caught mid-write; the next poll reads it
          }
        },
      });
    },
  };
}

/** The emulator in its own process; resolves with the environment that points a connector at it. */
async function startEmulatorChild(
  options: EmulatorOptions,
): Promise<{ child: ChildProcess; env: Record<string, string>; stats(): Promise<EmulatorStats> }> {
  const child = fork(join(BENCH_DIST, 'emulator-child.js'), [JSON.stringify(options)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  track(child);
  const env = await new Promise<Record<string, string>>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`emulator exited with ${code}`)));
    child.on('message', (m: { type?: string; env?: Record<string, string> }) => {
      if (m.type === 'ready' && m.env) resolve(m.env);
    });
  });
  const stats = () =>
    new Promise<EmulatorStats>((resolve) => {
      const on = (m: { type?: string; stats?: EmulatorStats }) => {
        if (m.type === 'stats' && m.stats) {
          child.off('message', on);
          resolve(m.stats);
        }
      };
      child.on('message', on);
      child.send({ type: 'stats' });
    });
  return { child, env, stats };
}

function aciSystem(id: SystemId, emulator: EmulatorOptions): SystemDef {
  return {
    id,
    label: LABELS[id],
    preCreateNode: false,
    start: async (ctx) => {
      const emu = await startEmulatorChild(emulator);
      const startedAt = Date.now();
      const proc = spawn(process.execPath, await connectorArgs(ctx, 'aci', []), {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          ...emu.env,
          // The connector paces under ACI's windows unless told otherwise: lifted with the emulator's.
          ACI_CREATION_WINDOWS: '1000000/60',
          ACI_DELETION_WINDOWS: '1000000/60',
          ACI_RESOURCE_GROUP: `bench-${ctx.nodeName}`,
          ACI_TEST_RUN_DIR: ctx.dir,
        },
      });
      return handle(proc, startedAt, {
        providerPods: async () => (await emu.stats()).groups,
        armStats: () => emu.stats(),
        cleanup: () => terminate(emu.child),
      });
    },
  };
}

// Simulated runtime timings as in the project's ACI scale test; quota above any N the benchmark runs.
const SIMULATED = { pullMs: 50, startMs: 50 };
const BIG_QUOTA = { containerGroups: 1_000_000, cores: 10_000_000 };

export const SYSTEMS: Record<SystemId, SystemDef> = {
  ceiling: {
    id: 'ceiling',
    label: LABELS.ceiling,
    preCreateNode: false,
    start: async (ctx) => {
      const startedAt = Date.now();
      const proc = spawn(
        process.execPath,
        [
          join(BENCH_DIST, 'ceiling-agent.js'),
          '--kubeconfig',
          await nodeKubeconfig(ctx.cluster, ctx.nodeName),
          '--node-name',
          ctx.nodeName,
          '--concurrency',
          '64',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      return handle(proc, startedAt);
    },
  },
  mock: mockSystem('mock', []),
  'mock-qps1000': mockSystem('mock-qps1000', ['--kube-api-qps', '1000']),
  aci: aciSystem('aci', { throttling: false, simulated: SIMULATED, quota: BIG_QUOTA }),
  // ARM's documented buckets; ACI's creation and deletion windows (100 per 5 min, 300 per hour) are lifted
  // as in the project's scale test, or a 1,000-pod burst would measure only those windows.
  'aci-arm-limits': aciSystem('aci-arm-limits', {
    throttling: true,
    limits: {
      creations: { count: 1_000_000, windowSeconds: 60 },
      deletions: { count: 1_000_000, windowSeconds: 60 },
    },
    simulated: SIMULATED,
    quota: BIG_QUOTA,
  }),
  kwok: {
    id: 'kwok',
    label: LABELS.kwok,
    preCreateNode: true,
    start: async (ctx) => {
      const bin = ctx.peers.kwok;
      if (!bin) throw new Error('kwok is not built');
      const stages = join(dirname(bin), 'stages.yaml');
      if (!existsSync(stages)) throw new Error(`no ${stages} (bench/peers/build.sh writes it)`);
      const port = await freePort();
      const startedAt = Date.now();
      const proc = spawn(
        bin,
        [
          '--kubeconfig',
          ctx.cluster.kubeconfig,
          '--manage-single-node',
          ctx.nodeName,
          '--config',
          stages,
          '--server-address',
          `127.0.0.1:${port}`,
          '--node-ip',
          '127.0.0.1',
          '--cidr',
          '10.128.0.0/10',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      return handle(proc, startedAt);
    },
  },
  vk: {
    id: 'vk',
    label: LABELS.vk,
    preCreateNode: false,
    start: async (ctx) => {
      const bin = ctx.peers.vk;
      if (!bin) throw new Error('virtual-kubelet is not built');
      const config = join(ctx.dir, 'vk-mock.json');
      writeFileSync(config, JSON.stringify({ [ctx.nodeName]: { cpu: '100k', memory: '100Ti', pods: '1M' } }));
      const [kubeletPort, metricsPort] = await Promise.all([freePort(), freePort()]);
      const startedAt = Date.now();
      const proc = spawn(
        bin,
        [
          '--provider',
          'mock',
          '--provider-config',
          config,
          '--nodename',
          ctx.nodeName,
          '--kubeconfig',
          ctx.cluster.kubeconfig,
          '--metrics-addr',
          `127.0.0.1:${metricsPort}`,
        ],
        {
          stdio: ['ignore', 'pipe', 'pipe'],
          // VK's kubelet API has no address setting (it binds ":PORT"); it gets a free port, and
          // nothing in the benchmark calls it. Everything VK calls is the loopback API server.
          env: {
            ...process.env,
            KUBELET_PORT: String(kubeletPort),
            VKUBELET_POD_IP: '127.0.0.1',
            APISERVER_CERT_LOCATION: ctx.cluster.kubeletServingCert,
            APISERVER_KEY_LOCATION: ctx.cluster.kubeletServingKey,
          },
        },
      );
      return handle(proc, startedAt);
    },
  },
};

/** Builds (or reuses) a Go peer with bench/peers/build.sh; the binary's path, or the reason it is unavailable. */
export async function buildPeer(
  tool: 'kwok' | 'vk',
  log: (l: string) => void,
): Promise<{ bin?: string; error?: string }> {
  try {
    log(`${tool}: bench/peers/build.sh ${tool} (first time: several minutes)`);
    const { stdout } = await run('bash', [join(repoRoot, 'bench/peers/build.sh'), tool], {
      maxBuffer: 64 * 1024 * 1024,
    });
    const lines = stdout.trim().split('\n');
    const bin = lines[lines.length - 1] ?? '';
    if (!existsSync(bin)) return { error: `build.sh printed no binary (${bin})` };
    return { bin };
  } catch (err) {
    const e = err as { stderr?: string; message?: string };
    return { error: (e.stderr ?? e.message ?? String(err)).trim().split('\n').slice(-5).join(' | ') };
  }
}
