/**
 * metrics-server (built from its pinned Go module by build.sh) in a running dev
 * cluster, for the tests of `kubectl top` and the HPA:
 *
 *   kubectl / HPA ─▶ API server ─(aggregation layer, front-proxy client cert)─▶ APIService v1beta1.metrics.k8s.io
 *     ─▶ Service kube-system/metrics-server ─▶ EndpointSlice: ADDRESS:443 in a test network namespace
 *     ─(devcluster/netns.ts front)─▶ metrics-server on 127.0.0.1:PORT ─▶ each node's kubelet port (/metrics/resource)
 *
 * The API server will not dial a loopback endpoint, hence the namespace; metrics-server reaches the
 * connector's kubelet port directly on its loopback InternalIP, with a client certificate of the
 * cluster CA (user system:metrics-server, the RBAC of metrics-server's own manifests) and the CA to
 * check the kubelet's serving certificate. One per cluster (the APIService is cluster-wide).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CertificateAuthority, writePair } from '../certs.js';
import { freePort, repoRoot, type ClusterInfo } from '../cluster.js';
import { writeKubeconfig } from '../kubeconfig.js';
import { createNetworkNamespace, type NetworkNamespace } from '../netns.js';
import { logTail, startProcess, terminate, type Managed } from '../processes.js';

const run = promisify(execFile);

export const METRICS_SERVER_USER = 'system:metrics-server';
/** The port the API server dials in the namespace (the Service's port). */
const FRONT_PORT = 443;

export interface MetricsServer {
  /** Where it listens (behind the namespace's front). */
  port: number;
  process: Managed;
  /** Removes the APIService and its objects, stops the process and the namespace. Idempotent. */
  stop(): Promise<void>;
}

export interface MetricsServerOptions {
  /** Folder with the built binary; default ACI_METRICS_SERVER_BIN, else build.sh is run. */
  binDir?: string;
  /** metrics-server's --metric-resolution (at least 10s). Default 10s. */
  resolution?: string;
  log?: (line: string) => void;
}

async function binDirOf(explicit: string | undefined): Promise<string> {
  if (explicit) return explicit;
  if (process.env.ACI_METRICS_SERVER_BIN) return process.env.ACI_METRICS_SERVER_BIN;
  const { stdout } = await run('bash', [join(repoRoot, 'devcluster/metrics-server/build.sh')], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout.trim().split('\n').at(-1) ?? '';
}

/** The objects of metrics-server's own manifests (components.yaml), for a user instead of a ServiceAccount. */
function manifests(ns: NetworkNamespace, caBundle: string): object[] {
  const subject = [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: METRICS_SERVER_USER }];
  const labels = { 'app.kubernetes.io/managed-by': 'aci-connector-devcluster' };
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'system:metrics-server', labels },
      rules: [
        { apiGroups: [''], resources: ['nodes/metrics'], verbs: ['get'] },
        { apiGroups: [''], resources: ['pods', 'nodes'], verbs: ['get', 'list', 'watch'] },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'system:metrics-server', labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:metrics-server' },
      subjects: subject,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'metrics-server:system:auth-delegator', labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' },
      subjects: subject,
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'metrics-server-auth-reader', namespace: 'kube-system', labels },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'Role',
        name: 'extension-apiserver-authentication-reader',
      },
      subjects: subject,
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'metrics-server', namespace: 'kube-system', labels },
      // No selector: the EndpointSlice below is ours.
      spec: { ports: [{ name: 'https', port: 443, targetPort: FRONT_PORT, protocol: 'TCP' }] },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: 'metrics-server-netns',
        namespace: 'kube-system',
        labels: {
          ...labels,
          'kubernetes.io/service-name': 'metrics-server',
          'endpointslice.kubernetes.io/managed-by': 'aci-connector-devcluster',
        },
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: [ns.address], conditions: { ready: true } }],
      ports: [{ name: 'https', port: FRONT_PORT, protocol: 'TCP' }],
    },
    {
      apiVersion: 'apiregistration.k8s.io/v1',
      kind: 'APIService',
      metadata: { name: 'v1beta1.metrics.k8s.io', labels },
      spec: {
        service: { name: 'metrics-server', namespace: 'kube-system', port: 443 },
        group: 'metrics.k8s.io',
        version: 'v1beta1',
        caBundle: Buffer.from(caBundle).toString('base64'),
        groupPriorityMinimum: 100,
        versionPriority: 100,
      },
    },
  ];
}

export async function startMetricsServer(
  cluster: ClusterInfo,
  opts: MetricsServerOptions = {},
): Promise<MetricsServer> {
  const log = opts.log ?? (() => undefined);
  const bin = join(await binDirOf(opts.binDir), 'metrics-server');
  const kubectl = (args: string[], input?: string) =>
    new Promise<string>((resolve, reject) => {
      const child = execFile(
        join(cluster.binDir, 'kubectl'),
        ['--kubeconfig', cluster.kubeconfig, ...args],
        { maxBuffer: 16 * 1024 * 1024 },
        (err, stdout, stderr) =>
          err ? reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout),
      );
      if (input !== undefined) child.stdin?.end(input);
    });

  const dir = join(cluster.runDir, `metrics-server-${process.pid}-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  const pki = join(cluster.runDir, 'pki');
  const ca = await CertificateAuthority.load({
    cert: readFileSync(join(pki, 'ca.crt'), 'utf8'),
    key: readFileSync(join(pki, 'ca.key'), 'utf8'),
  });
  const client = writePair(dir, 'client', await ca.issue({ commonName: METRICS_SERVER_USER, client: true }));
  const kubeconfig = join(dir, 'metrics-server.kubeconfig');
  writeKubeconfig(kubeconfig, {
    server: cluster.server,
    caFile: cluster.caCert,
    certFile: client.cert,
    keyFile: client.key,
    user: METRICS_SERVER_USER,
  });

  const ns = await createNetworkNamespace(cluster.runDir);
  let proc: Managed | undefined;
  const stop = async (): Promise<void> => {
    await kubectl(['delete', 'apiservice', 'v1beta1.metrics.k8s.io', '--ignore-not-found', '--wait=false']).catch(
      () => undefined,
    );
    await kubectl([
      'delete',
      '-n',
      'kube-system',
      'service,endpointslice',
      '-l',
      'app.kubernetes.io/managed-by=aci-connector-devcluster',
      '--ignore-not-found',
    ]).catch(() => undefined);
    if (proc?.child.pid) await terminate([proc.child.pid]);
    await ns.teardown();
  };
  try {
    const port = await freePort();
    const serving = writePair(
      dir,
      'serving',
      await ca.issue({
        commonName: 'metrics-server',
        server: true,
        serverNames: ['metrics-server.kube-system.svc', 'metrics-server.kube-system.svc.cluster.local', 'localhost'],
        serverIps: ['127.0.0.1', ns.address],
      }),
    );
    // RBAC first: at start metrics-server reads the request-header CA from kube-system (as itself).
    await kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'List', items: manifests(ns, readFileSync(cluster.caCert, 'utf8')) }),
    );
    proc = startProcess(cluster.runDir, `metrics-server-${port}`, bin, [
      `--secure-port=${port}`,
      '--bind-address=127.0.0.1',
      `--cert-dir=${dir}`,
      `--tls-cert-file=${serving.cert}`,
      `--tls-private-key-file=${serving.key}`,
      `--kubeconfig=${kubeconfig}`,
      `--authentication-kubeconfig=${kubeconfig}`,
      `--authorization-kubeconfig=${kubeconfig}`,
      // The node's kubelet endpoint as it advertises it: InternalIP and status.daemonEndpoints' port.
      '--kubelet-preferred-address-types=InternalIP',
      '--kubelet-use-node-status-port',
      `--kubelet-certificate-authority=${cluster.caCert}`,
      // metrics-server wants its resolution longer than the kubelet request timeout (default 10 s).
      `--metric-resolution=${opts.resolution ?? '10s'}`,
      '--kubelet-request-timeout=5s',
      '--v=2',
    ]);
    await ns.front(FRONT_PORT, port);
    log(`metrics-server on 127.0.0.1:${port}, reached by the API server at ${ns.address}:${FRONT_PORT}`);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const available = await kubectl([
        'get',
        'apiservice',
        'v1beta1.metrics.k8s.io',
        '-o',
        'jsonpath={.status.conditions[?(@.type=="Available")].status}',
      ]).catch(() => '');
      if (available.trim() === 'True') break;
      const exited = await Promise.race([
        proc.exited,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 1_000)),
      ]);
      if (exited !== undefined) throw new Error(`metrics-server exited (${exited}):\n${logTail(proc, 20)}`);
      if (Date.now() > deadline) {
        const status = await kubectl([
          'get',
          'apiservice',
          'v1beta1.metrics.k8s.io',
          '-o',
          'jsonpath={.status.conditions}',
        ]).catch((e: Error) => e.message);
        throw new Error(`APIService v1beta1.metrics.k8s.io not Available after 120 s: ${status}\n${logTail(proc, 20)}`);
      }
    }
    return { port, process: proc, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
