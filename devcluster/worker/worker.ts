/**
 * A real worker node for the dev cluster: containerd (Debian's, with runc) and a kubelet built
 * from the control plane's k8s.io/kubernetes pin (devcluster/worker/build.sh), registered as a
 * normal node with its own node identity. It lives in a folder of the cluster's run folder
 * (so `devcluster down` and the test runner's leak check find its processes), stores images
 * and containers there, and is told apart from the connector's nodes by having none of their
 * labels.
 *
 * The dev cluster has no pod network and no kube-proxy: the API server and the emulator listen
 * on the host's loopback. Pods that must reach them run with hostNetwork (the tests patch the
 * example manifest accordingly); the CNI configuration is the loopback plugin only, so no pod
 * ever gets a host interface, a bridge or an iptables rule. No registry is reachable: images
 * come in with `ctr images import` (importImage), the sandbox ("pause") image too, built from
 * Debian's static catatonit in its pause mode, as podman builds its own.
 */
import { execFile } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { stringify } from 'yaml';
import { freePort, repoRoot, type ClusterInfo } from '../cluster.js';
import { nodeKubeconfig } from '../node-identity.js';
import { logTail, processesMentioning, startProcess, terminate, type Managed } from '../processes.js';

const run = promisify(execFile);

export const WORKER_NAMESPACE = 'k8s.io';
const CATATONIT = '/usr/bin/catatonit';
export const PAUSE_IMAGE = 'localhost/aci-worker/pause:catatonit';
/** The worker's taint: only pods that tolerate it (ours) land there, never another test's. */
export const WORKER_TAINT = { key: 'aci-dev/worker', value: 'true', effect: 'NoSchedule' } as const;

export interface WorkerInfo {
  nodeName: string;
  /** The worker's folder (inside the cluster's run folder). */
  dir: string;
  /**
   * A short folder in /tmp for what holds unix sockets (containerd's, the kubelet's root with its
   * pod-resources and plugin sockets): a socket path has at most 107 bytes, and a run folder under
   * a test's TMPDIR is deeper than that allows (`bind: invalid argument`).
   */
  socketDir: string;
  containerdSocket: string;
  kubeletPort: number;
  kubeletLog: string;
  containerdLog: string;
}

export interface WorkerOptions {
  nodeName?: string;
  log?: (line: string) => void;
  /** Let this process exit while the worker keeps running (for `devcluster up --worker`). */
  outliveParent?: boolean;
  /** How long to wait for the node to be Ready (default 3 minutes). */
  readyTimeoutMs?: number;
}

/** The kubelet binary's folder: KUBELET_BIN, else devcluster/worker/build.sh (cached per version). */
async function kubeletBinDir(): Promise<string> {
  if (process.env.ACI_KUBELET_BIN) return process.env.ACI_KUBELET_BIN;
  const { stdout } = await run('bash', [join(repoRoot, 'devcluster/worker/build.sh')], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.trim().split('\n').pop() ?? '';
}

function requireBinary(path: string, pkg: string): void {
  if (!existsSync(path)) throw new Error(`${path} is missing: install Debian's ${pkg} (scripts/lib.sh does)`);
}

function containerdConfig(dir: string, socketDir: string): string {
  // containerd 1.6's config version 2; every path in the worker's folder.
  return `version = 2
root = ${JSON.stringify(join(dir, 'containerd', 'root'))}
state = ${JSON.stringify(join(dir, 'containerd', 'state'))}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = ${JSON.stringify(join(socketDir, 'containerd.sock'))}

[ttrpc]
  address = ${JSON.stringify(join(socketDir, 'containerd.sock.ttrpc'))}

[plugins."io.containerd.internal.v1.opt"]
  path = ${JSON.stringify(join(dir, 'containerd', 'opt'))}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${PAUSE_IMAGE}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # This machine withholds CAP_SYS_RESOURCE: the sandbox's oom_score_adj of -998 fails runc
  # ("can't get final child's PID from pipe"); clamp it to containerd's own, as rootless setups do.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        # No systemd here: cgroupfs, as the kubelet is told.
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = ${JSON.stringify(join(dir, 'cni'))}
`;
}

/** Pods get a network namespace with loopback only: nothing on the host changes (see the file comment). */
const CNI_CONFIG = JSON.stringify(
  { cniVersion: '1.0.0', name: 'aci-worker-loopback', plugins: [{ type: 'loopback' }] },
  null,
  2,
);

function kubeletConfig(cluster: ClusterInfo, dir: string, socket: string, port: number, healthzPort: number): string {
  return stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // This machine's cgroups are v1 (hybrid); kubelet 1.35+ refuses v1 unless told.
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    // No QoS cgroup tree or node-allocatable enforcement on the host's cgroups: a test node.
    cgroupsPerQOS: false,
    enforceNodeAllocatable: [],
    containerRuntimeEndpoint: `unix://${socket}`,
    address: '127.0.0.1',
    port,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    healthzPort,
    tlsCertFile: cluster.kubeletServingCert,
    tlsPrivateKeyFile: cluster.kubeletServingKey,
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: cluster.caCert },
    },
    authorization: { mode: 'Webhook' },
    failSwapOn: false,
    clusterDomain: 'cluster.local',
    resolvConf: '/etc/resolv.conf',
    // The disk is shared with everything else on the machine: evict only when it is nearly full.
    evictionHard: { 'memory.available': '100Mi', 'nodefs.available': '2%', 'imagefs.available': '2%' },
    imageGCHighThresholdPercent: 99,
    imageGCLowThresholdPercent: 98,
    serializeImagePulls: false,
    registerNode: true,
    registerWithTaints: [WORKER_TAINT],
    staticPodPath: join(dir, 'manifests'),
  });
}

async function waitUntil(
  what: string,
  procs: Managed[],
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const p of procs) {
      if (p.child.exitCode !== null || p.child.signalCode !== null)
        throw new Error(`${p.name} exited while waiting for ${what}:\n${logTail(p, 30)}`);
    }
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline)
      throw new Error(
        `timed out waiting for ${what}:\n${procs.map((p) => `--- ${p.name}\n${logTail(p, 20)}`).join('\n')}`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
}

export function ctr(
  worker: Pick<WorkerInfo, 'containerdSocket'>,
  args: string[],
): Promise<{ stdout: string; stderr: string }> {
  return run('ctr', ['--address', worker.containerdSocket, '--namespace', WORKER_NAMESPACE, ...args], {
    maxBuffer: 64 * 1024 * 1024,
    timeout: 10 * 60_000,
  });
}

/** Imports an image archive (docker-archive or OCI, as `podman save` writes) into the worker's containerd. */
export async function importImage(worker: Pick<WorkerInfo, 'containerdSocket'>, archive: string): Promise<void> {
  await ctr(worker, ['images', 'import', archive]);
}

/** The sandbox image: catatonit -P (pause mode), as a docker-archive that `ctr images import` takes. */
export async function pauseArchive(dir: string): Promise<string> {
  requireBinary(CATATONIT, 'catatonit');
  const work = mkdtempSync(join(tmpdir(), 'aci-worker-pause-'));
  try {
    const rootfs = join(work, 'rootfs');
    mkdirSync(rootfs);
    copyFileSync(CATATONIT, join(rootfs, 'catatonit'));
    chmodSync(join(rootfs, 'catatonit'), 0o755);
    const layer = join(work, 'layer.tar');
    await run('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', layer, '.']);
    const layerDigest = (await run('sha256sum', [layer])).stdout.split(' ')[0] ?? '';
    const config = JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Entrypoint: ['/catatonit', '-P'], User: '65535:65535' },
      rootfs: { type: 'layers', diff_ids: [`sha256:${layerDigest}`] },
    });
    const configName = 'config.json';
    writeFileSync(join(work, configName), config);
    mkdirSync(join(work, 'layer'));
    copyFileSync(layer, join(work, 'layer', 'layer.tar'));
    writeFileSync(
      join(work, 'manifest.json'),
      JSON.stringify([{ Config: configName, RepoTags: [PAUSE_IMAGE], Layers: ['layer/layer.tar'] }]),
    );
    const archive = join(dir, 'pause.tar');
    await run('tar', ['-C', work, '-cf', archive, 'manifest.json', configName, 'layer/layer.tar']);
    return archive;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** Starts containerd and a kubelet for a node named `nodeName`, and waits until the node is Ready. */
export async function startWorker(cluster: ClusterInfo, opts: WorkerOptions = {}): Promise<WorkerInfo> {
  const log = opts.log ?? (() => undefined);
  const nodeName = opts.nodeName ?? `worker-${Math.random().toString(36).slice(2, 8)}`;
  requireBinary('/usr/bin/containerd', 'containerd');
  requireBinary('/usr/sbin/runc', 'runc');
  requireBinary('/usr/lib/cni/loopback', 'containernetworking-plugins');
  const kubelet = join(await kubeletBinDir(), 'kubelet');
  const dir = join(cluster.runDir, `worker-${nodeName}`);
  for (const d of ['containerd', 'cni', 'manifests', 'pki']) mkdirSync(join(dir, d), { recursive: true });
  const socketDir = mkdtempSync('/tmp/aciw-');
  writeFileSync(join(dir, 'socket-dir'), socketDir);
  const socket = join(socketDir, 'containerd.sock');
  writeFileSync(join(dir, 'containerd.toml'), containerdConfig(dir, socketDir));
  writeFileSync(join(dir, 'cni', '10-loopback.conflist'), CNI_CONFIG);
  const [port, healthzPort] = await Promise.all([freePort(), freePort()]);
  writeFileSync(join(dir, 'kubelet.yaml'), kubeletConfig(cluster, dir, socket, port, healthzPort));
  const kubeconfig = await nodeKubeconfig(cluster, nodeName);

  const start = (name: string, bin: string, args: string[]) =>
    startProcess(cluster.runDir, name, bin, args, { outliveParent: opts.outliveParent ?? false });
  // Written before anything starts, so `devcluster down` can always stop what follows.
  const writeInfo = () => writeFileSync(join(dir, 'worker.json'), JSON.stringify(info, null, 2));
  const containerd = start(`containerd-${nodeName}`, '/usr/bin/containerd', [
    '--config',
    join(dir, 'containerd.toml'),
    '--log-level',
    'info',
  ]);
  const info: WorkerInfo = {
    nodeName,
    dir,
    socketDir,
    containerdSocket: socket,
    kubeletPort: port,
    kubeletLog: '',
    containerdLog: containerd.logFile,
  };
  writeInfo();
  try {
    await waitUntil(
      'containerd',
      [containerd],
      async () => (await ctr(info, ['version'])).stdout.includes('Server:'),
      60_000,
    );
    log(`containerd ready (${nodeName})`);
    await importImage(info, await pauseArchive(dir));
    const kubeletProc = start(`kubelet-${nodeName}`, kubelet, [
      `--config=${join(dir, 'kubelet.yaml')}`,
      `--kubeconfig=${kubeconfig}`,
      `--root-dir=${join(socketDir, 'kubelet')}`,
      `--cert-dir=${join(dir, 'pki')}`,
      `--hostname-override=${nodeName}`,
      // No --node-ip: the kubelet refuses a loopback one ("nodeIP can't be loopback address"),
      // so it takes the host's default-route address, as on any machine.
      '--v=2',
    ]);
    info.kubeletLog = kubeletProc.logFile;
    writeInfo();
    const kubectl = join(cluster.binDir, 'kubectl');
    await waitUntil(
      `node ${nodeName} Ready`,
      [containerd, kubeletProc],
      async () => {
        const { stdout } = await run(kubectl, [
          '--kubeconfig',
          cluster.kubeconfig,
          'get',
          'node',
          nodeName,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
        ]);
        return stdout.trim() === 'True';
      },
      opts.readyTimeoutMs ?? 180_000,
    );
    log(`worker node ${nodeName} Ready`);
    return info;
  } catch (err) {
    await stopWorker(info);
    throw err;
  }
}

/** Mount points at or under `dir`, deepest first. */
function mountsUnder(dir: string): string[] {
  const points = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .map((p) => p.replace(/\\040/g, ' '))
    .filter((p) => p === dir || p.startsWith(`${dir}/`));
  return [...new Set(points)].sort((a, b) => b.length - a.length);
}

/**
 * Stops the worker: its containers first (killing containerd alone would leave them running),
 * then the kubelet, containerd and its shims, then every mount under its folder (snapshots,
 * the kubelet's Secret and token volumes).
 */
export async function stopWorker(worker: Pick<WorkerInfo, 'dir' | 'socketDir' | 'containerdSocket'>): Promise<void> {
  const { dir, socketDir } = worker;
  const kubelets = processesMentioning(`--root-dir=${join(socketDir, 'kubelet')}`).map((p) => p.pid);
  await terminate(kubelets);
  if (existsSync(worker.containerdSocket)) {
    const tasks = await ctr(worker, ['tasks', 'ls', '-q']).then(
      (r) => r.stdout.split('\n').filter(Boolean),
      () => [],
    );
    for (const id of tasks) await ctr(worker, ['tasks', 'kill', '--signal', 'SIGKILL', id]).catch(() => undefined);
    for (const id of tasks) await ctr(worker, ['tasks', 'delete', '--force', id]).catch(() => undefined);
  }
  // containerd (its arguments name the worker's folder), and the shims (they name the socket).
  await terminate([...processesMentioning(dir), ...processesMentioning(socketDir)].map((p) => p.pid));
  for (const m of [...mountsUnder(socketDir), ...mountsUnder(dir)])
    await run('umount', ['-l', m]).catch(() => undefined);
  if (mountsUnder(socketDir).length === 0) rmSync(socketDir, { recursive: true, force: true });
}

/** Stops every worker of a run folder (those that wrote worker.json). */
export async function stopWorkersIn(runDir: string): Promise<void> {
  if (!existsSync(runDir)) return;
  for (const d of readdirSync(runDir)) {
    const file = join(runDir, d, 'worker.json');
    if (d.startsWith('worker-') && existsSync(file))
      await stopWorker(JSON.parse(readFileSync(file, 'utf8')) as WorkerInfo);
  }
}
