/**
 * A real Kubernetes control plane on loopback: etcd, kube-apiserver,
 * kube-controller-manager and kube-scheduler, each in its own process, in a
 * private run folder with free ports, so two runs on one machine never collide.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CertificateAuthority, serviceAccountKeys, writePair } from './certs.js';
import { writeKubeconfig } from './kubeconfig.js';
import { nodeKubeconfig } from './node-identity.js';
import { logTail, startProcess, stopRun, type Managed } from './processes.js';

const run = promisify(execFile);

/** The repository root, found from this file whether it runs from src or dist. */
export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!dir.endsWith('/devcluster')) dir = dirname(dir);
  dir = dirname(dir);
  return dir.endsWith('/dist') ? dirname(dir) : dir;
})();

export interface ClusterInfo {
  /** https://127.0.0.1:PORT */
  server: string;
  /** Admin kubeconfig path. */
  kubeconfig: string;
  /**
   * Kubeconfig of the node identity `system:node:aci-connector` (group system:nodes), what TLS
   * bootstrap gives the connector in a cluster. Other node names: nodeKubeconfig() in node-identity.ts.
   */
  connectorKubeconfig: string;
  /** CA that signed the API server's and every generated certificate. */
  caCert: string;
  /** Folder with etcd, kube-apiserver, …, kubectl. */
  binDir: string;
  /** This run's private folder (data dirs, logs, pids). */
  runDir: string;
  /** Certificate and key that a node's kubelet endpoint can serve, signed by caCert. */
  kubeletServingCert: string;
  kubeletServingKey: string;
  /** Seconds from the first process start to /readyz and a working controller-manager. */
  startSeconds: number;
}

export interface StartOptions {
  /** Folder with the built binaries; default: ACI_KUBE_BIN, else devcluster/kube/build.sh is run. */
  binDir?: string;
  /** Parent folder for the run folder; default: the OS temp dir. */
  runRoot?: string;
  log?: (line: string) => void;
  /** Let this process exit while the cluster keeps running (for `devcluster up`). */
  outliveParent?: boolean;
  /**
   * Longest life of certificates the controller-manager signs for CSRs (`--cluster-signing-duration`,
   * a Go duration such as `10m`); default: its own (one year). A CSR's expirationSeconds can only shorten it.
   */
  clusterSigningDuration?: string;
}

/** A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after). */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

export async function resolveBinDir(explicit?: string, log?: (l: string) => void): Promise<string> {
  if (explicit) return explicit;
  if (process.env.ACI_KUBE_BIN) return process.env.ACI_KUBE_BIN;
  log?.('control plane binaries: running devcluster/kube/build.sh');
  const { stdout } = await run('bash', [join(repoRoot, 'devcluster/kube/build.sh')], { maxBuffer: 64 * 1024 * 1024 });
  const lines = stdout.trim().split('\n');
  return lines[lines.length - 1] ?? '';
}

/** GET path on the API server with a client certificate; resolves with the status code (0 when unreachable). */
function probe(
  server: string,
  path: string,
  tls: { ca: string; cert: string; key: string },
): Promise<{ status: number; body: string }> {
  return new Promise((done) => {
    const req = request(`${server}${path}`, { ...tls, timeout: 2_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => done({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => done({ status: 0, body: '' }));
    req.end();
  });
}

async function waitUntil(
  what: string,
  procs: Managed[],
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const dead: string[] = [];
  for (const p of procs) void p.exited.then(() => dead.push(p.name));
  while (Date.now() < deadline) {
    if (dead.length > 0) {
      const p = procs.find((x) => x.name === dead[0]);
      throw new Error(`${dead[0]} exited while waiting for ${what}:\n${p ? logTail(p) : ''}`);
    }
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}:\n${procs.map((p) => `--- ${p.name}\n${logTail(p, 8)}`).join('\n')}`);
}

export async function startCluster(opts: StartOptions = {}): Promise<ClusterInfo> {
  const log = opts.log ?? (() => undefined);
  const binDir = await resolveBinDir(opts.binDir, log);
  const root = opts.runRoot ?? join(tmpdir(), 'aci-connector-runs');
  mkdirSync(root, { recursive: true });
  const runDir = mkdtempSync(join(root, 'cluster-'));
  const pki = join(runDir, 'pki');
  mkdirSync(pki);
  const started = Date.now();
  try {
    return await boot(binDir, runDir, pki, started, log, opts.outliveParent ?? false, opts.clusterSigningDuration);
  } catch (err) {
    await stopRun(runDir);
    throw err;
  }
}

async function boot(
  binDir: string,
  runDir: string,
  pki: string,
  started: number,
  log: (l: string) => void,
  outliveParent: boolean,
  clusterSigningDuration?: string,
): Promise<ClusterInfo> {
  const start = (name: string, bin: string, args: string[]) =>
    startProcess(runDir, name, join(binDir, bin), args, { outliveParent });
  const [etcdClient, etcdPeer, apiPort, cmPort, schedPort] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const server = `https://127.0.0.1:${apiPort}`;

  const ca = await CertificateAuthority.create('aci-connector-dev-ca');
  const caPaths = writePair(pki, 'ca', ca.pem);
  const apiserverPair = writePair(
    pki,
    'apiserver',
    await ca.issue({
      commonName: 'kube-apiserver',
      server: true,
      serverNames: [
        'localhost',
        'kubernetes',
        'kubernetes.default',
        'kubernetes.default.svc',
        'kubernetes.default.svc.cluster.local',
      ],
      serverIps: ['127.0.0.1', '10.0.0.1'],
    }),
  );
  const client = async (name: string, commonName: string, organizations?: string[]) =>
    writePair(pki, name, await ca.issue({ commonName, organizations, client: true }));
  const [admin, kubeletClient, cm, sched] = await Promise.all([
    client('admin', 'dev-admin', ['system:masters']),
    // Not system:masters: its calls to a node's kubelet API are authorized by the system:kubelet-api-admin binding below.
    client('apiserver-kubelet-client', 'kube-apiserver-kubelet-client'),
    client('controller-manager', 'system:kube-controller-manager'),
    client('scheduler', 'system:kube-scheduler'),
  ]);
  const kubeletServing = writePair(
    pki,
    'kubelet-serving',
    await ca.issue({
      commonName: 'aci-connector-kubelet',
      server: true,
      serverNames: ['localhost'],
      serverIps: ['127.0.0.1'],
    }),
  );
  const sa = serviceAccountKeys(pki);
  // The aggregation layer (metrics.k8s.io from devcluster/metrics-server): the API server proxies to
  // aggregated servers with a front-proxy client certificate, trusted through a CA of its own, as kubeadm sets it up.
  const frontProxyCa = await CertificateAuthority.create('aci-connector-front-proxy-ca');
  const frontProxyCaPaths = writePair(pki, 'front-proxy-ca', frontProxyCa.pem);
  const frontProxyClient = writePair(
    pki,
    'front-proxy-client',
    await frontProxyCa.issue({ commonName: 'front-proxy-client', client: true }),
  );

  const kc = (name: string, user: string, pair: { cert: string; key: string }) => {
    const path = join(runDir, `${name}.kubeconfig`);
    writeKubeconfig(path, { server, caFile: caPaths.cert, certFile: pair.cert, keyFile: pair.key, user });
    return path;
  };
  const adminKc = kc('admin', 'dev-admin', admin);
  const cmKc = kc('controller-manager', 'system:kube-controller-manager', cm);
  const schedKc = kc('scheduler', 'system:kube-scheduler', sched);
  const connectorKc = await nodeKubeconfig({ server, runDir, caCert: caPaths.cert }, 'aci-connector');
  log(`certificates ready (${Date.now() - started} ms)`);

  const etcd = start('etcd', 'etcd', [
    '--name=dev',
    `--data-dir=${join(runDir, 'etcd')}`,
    `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
    `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
    `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
    `--initial-cluster=dev=http://127.0.0.1:${etcdPeer}`,
    // A throwaway test store: durability across power loss buys nothing and fsync costs seconds.
    '--unsafe-no-fsync',
    '--log-level=warn',
  ]);

  const apiserver = start('kube-apiserver', 'kube-apiserver', [
    `--etcd-servers=http://127.0.0.1:${etcdClient}`,
    '--bind-address=127.0.0.1',
    '--advertise-address=127.0.0.1',
    `--secure-port=${apiPort}`,
    `--tls-cert-file=${apiserverPair.cert}`,
    `--tls-private-key-file=${apiserverPair.key}`,
    `--client-ca-file=${caPaths.cert}`,
    // As a production cluster runs: kubelets (and the connector, a node) are held to their own
    // node's objects by the Node authorizer and the NodeRestriction admission plugin.
    '--authorization-mode=Node,RBAC',
    '--enable-admission-plugins=NodeRestriction',
    '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
    `--service-account-key-file=${sa.pub}`,
    `--service-account-signing-key-file=${sa.key}`,
    '--service-cluster-ip-range=10.0.0.0/24',
    '--allow-privileged=true',
    // The API server reaches a node's kubelet port (logs, exec) at its InternalIP, with a client certificate.
    '--kubelet-preferred-address-types=InternalIP',
    `--kubelet-client-certificate=${kubeletClient.cert}`,
    `--kubelet-client-key=${kubeletClient.key}`,
    `--kubelet-certificate-authority=${caPaths.cert}`,
    // Bootstrap tokens (kube-system/bootstrap-token-*) authenticate as system:bootstrappers, for TLS bootstrap.
    '--enable-bootstrap-token-auth',
    `--requestheader-client-ca-file=${frontProxyCaPaths.cert}`,
    '--requestheader-allowed-names=front-proxy-client',
    '--requestheader-username-headers=X-Remote-User',
    '--requestheader-group-headers=X-Remote-Group',
    '--requestheader-extra-headers-prefix=X-Remote-Extra-',
    `--proxy-client-cert-file=${frontProxyClient.cert}`,
    `--proxy-client-key-file=${frontProxyClient.key}`,
    // No kube-proxy here: aggregated APIs are reached at their EndpointSlice's address, not the Service's cluster IP.
    '--enable-aggregator-routing=true',
    '--profiling=false',
    '--v=1',
  ]);

  const tls = { ca: ca.pem.cert, cert: readFileSync(admin.cert, 'utf8'), key: readFileSync(admin.key, 'utf8') };
  await waitUntil(
    'kube-apiserver /readyz',
    [etcd, apiserver],
    async () => (await probe(server, '/readyz', tls)).status === 200,
    60_000,
  );
  log(`kube-apiserver ready (${Date.now() - started} ms)`);

  const controllerManager = start('kube-controller-manager', 'kube-controller-manager', [
    `--kubeconfig=${cmKc}`,
    `--authentication-kubeconfig=${cmKc}`,
    `--authorization-kubeconfig=${cmKc}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${cmPort}`,
    '--leader-elect=false',
    '--use-service-account-credentials=true',
    `--service-account-private-key-file=${sa.key}`,
    `--root-ca-file=${caPaths.cert}`,
    // The CA signs approved CSRs (csrsigning), kubelet client ones included; csrapproving approves
    // node client CSRs whose requester may (see the bindings below). Both are on by default;
    // bootstrapsigner and tokencleaner (bootstrap tokens) are not.
    `--cluster-signing-cert-file=${caPaths.cert}`,
    `--cluster-signing-key-file=${caPaths.key}`,
    ...(clusterSigningDuration ? [`--cluster-signing-duration=${clusterSigningDuration}`] : []),
    '--controllers=*,bootstrapsigner,tokencleaner',
    // HPAs are evaluated every 5 s instead of 15 s, so the autoscaling tests take less time.
    '--horizontal-pod-autoscaler-sync-period=5s',
    '--v=1',
  ]);
  const scheduler = start('kube-scheduler', 'kube-scheduler', [
    `--kubeconfig=${schedKc}`,
    `--authentication-kubeconfig=${schedKc}`,
    `--authorization-kubeconfig=${schedKc}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${schedPort}`,
    '--leader-elect=false',
    '--v=1',
  ]);

  // The project's own RBAC (the bootstrap ServiceAccount's role, and the cluster identity every node may read).
  const kubectl = join(binDir, 'kubectl');
  await run(kubectl, ['--kubeconfig', adminKc, 'apply', '-f', join(repoRoot, 'examples/rbac.yaml')]);
  // kubectl logs/exec/attach: the kubelet API asks the API server whether its kubelet client may use the node.
  await run(kubectl, [
    '--kubeconfig',
    adminKc,
    'create',
    'clusterrolebinding',
    'kube-apiserver-kubelet-api-admin',
    '--clusterrole=system:kubelet-api-admin',
    '--user=kube-apiserver-kubelet-client',
  ]);
  // TLS bootstrap as kubeadm sets it up: bootstrap tokens may create node client CSRs, which are
  // approved automatically, and nodes may renew their own certificate.
  const bind = (name: string, role: string, group: string) =>
    run(kubectl, [
      '--kubeconfig',
      adminKc,
      'create',
      'clusterrolebinding',
      name,
      `--clusterrole=${role}`,
      `--group=${group}`,
    ]);
  await Promise.all([
    bind('aci-dev:kubelet-bootstrap', 'system:node-bootstrapper', 'system:bootstrappers'),
    bind(
      'aci-dev:node-autoapprove-bootstrap',
      'system:certificates.k8s.io:certificatesigningrequests:nodeclient',
      'system:bootstrappers',
    ),
    bind(
      'aci-dev:node-autoapprove-certificate-rotation',
      'system:certificates.k8s.io:certificatesigningrequests:selfnodeclient',
      'system:nodes',
    ),
  ]);

  // The controller-manager works once it has created the default ServiceAccount.
  const all = [etcd, apiserver, controllerManager, scheduler];
  await waitUntil(
    'the controller-manager (default ServiceAccount)',
    all,
    async () => (await probe(server, '/api/v1/namespaces/default/serviceaccounts/default', tls)).status === 200,
    60_000,
  );
  const startSeconds = (Date.now() - started) / 1000;
  log(`control plane ready in ${startSeconds.toFixed(1)} s`);

  const info: ClusterInfo = {
    server,
    kubeconfig: adminKc,
    connectorKubeconfig: connectorKc,
    caCert: caPaths.cert,
    binDir,
    runDir,
    kubeletServingCert: kubeletServing.cert,
    kubeletServingKey: kubeletServing.key,
    startSeconds,
  };
  writeFileSync(join(runDir, 'cluster.json'), JSON.stringify(info, null, 2));
  return info;
}

export async function stopCluster(info: Pick<ClusterInfo, 'runDir'>, opts: { keepDir?: boolean } = {}): Promise<void> {
  await stopRun(info.runDir, { removeDir: !opts.keepDir });
}
