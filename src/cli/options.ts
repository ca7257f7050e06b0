/** Flag parsing for the aci-connector binary: every flag, its default and its check. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { isLogLevel, LOG_LEVELS } from '../common/logger.js';
import { DEFAULT_TAINT } from '../core/taints.js';

export interface CliOptions {
  kubeconfig?: string;
  bootstrapKubeconfig?: string;
  certDir?: string;
  rotateCertificates: boolean;
  nodeCertRotationFraction?: number;
  nodeCertExpirationSeconds?: number;
  nodeName: string;
  nodeIp: string;
  provider: 'aci' | 'mock';
  taint?: string[];
  kubeApiQps: number;
  kubeApiBurst: number;
  workers: number;
  kubeletPort: number;
  kubeletAddress: string;
  kubeletTlsCert?: string;
  kubeletTlsKey?: string;
  kubeletClientCa?: string;
  kubeletAuthorizationMode: 'Webhook' | 'AlwaysAllow';
  kubeletAnonymousAuth: boolean;
  metricsPort: number;
  metricsAddress: string;
  metricsRequireAuth: boolean;
  logLevel: string;
  leaderElect: boolean;
  leaderElectKubeconfig?: string;
  leaderElectResourceNamespace?: string;
  leaderElectResourceName?: string;
  /** Milliseconds. */
  leaderElectLeaseDuration: number;
  leaderElectRenewDeadline: number;
  leaderElectRetryPeriod: number;
  mockStartDelayMs: number;
  mockStateFile?: string;
  mockHealthFile?: string;
}

function positiveNumber(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number.');
  return n;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('must be a positive integer.');
  return n;
}

function nonNegativeInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer.');
  return n;
}

function fraction(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n >= 1)
    throw new InvalidArgumentError('must be a number between 0 and 1 (exclusive).');
  return n;
}

function expirationSeconds(v: string): number {
  const n = Number(v);
  // The CertificateSigningRequest API refuses expirationSeconds below 600.
  if (!Number.isInteger(n) || n < 600)
    throw new InvalidArgumentError('must be an integer of at least 600 (the API minimum).');
  return n;
}

/** A duration as kube's flags write it ("15s", "500ms", "1m") or plain seconds; milliseconds out. */
export function duration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(v.trim());
  const n = m ? Number(m[1]) * (m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000) : NaN;
  if (!Number.isFinite(n) || n <= 0)
    throw new InvalidArgumentError('must be a positive duration (e.g. 15s, 500ms, or seconds).');
  return n;
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port number (0-65535).');
  return n;
}

function nodeName(v: string): string {
  if (!/^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$/.test(v)) {
    throw new InvalidArgumentError('must be a DNS subdomain name (lower case letters, digits, "-" and ".").');
  }
  return v;
}

function collect(v: string, prev: string[] | undefined): string[] {
  return [...(prev ?? []), v];
}

function logLevel(v: string): string {
  if (!isLogLevel(v)) throw new InvalidArgumentError(`must be one of ${LOG_LEVELS.join(', ')}.`);
  return v;
}

export function buildProgram(version: string): Command {
  const env = process.env;
  return new Command('aci-connector')
    .description('A Kubernetes node that runs the pods bound to it as Azure Container Instances container groups.')
    .version(version, '-v, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show this help and exit')
    .option(
      '--kubeconfig <path>',
      'kubeconfig file; without it: in-cluster config, then $KUBECONFIG (or ~/.kube/config)',
    )
    .option(
      '--bootstrap-kubeconfig <path>',
      'TLS bootstrap: kubeconfig of the identity that requests the node client certificate (a bootstrap token); default with --cert-dir: the in-cluster ServiceAccount',
    )
    .option(
      '--cert-dir <path>',
      'TLS bootstrap: folder of the node client certificate (system:node:<node-name>); got by a CSR when missing or due, then used for every API call (excludes --kubeconfig)',
    )
    .addOption(
      new Option(
        '--rotate-certificates',
        'TLS bootstrap: renew the node client certificate at 70-90 % of its life (default)',
      ).default(true),
    )
    .option('--no-rotate-certificates', 'TLS bootstrap: keep the node client certificate until it expires')
    .addOption(
      new Option(
        '--node-cert-rotation-fraction <f>',
        'TLS bootstrap: rotate at this fraction of the life instead of a random one in 0.7-0.9 (for tests)',
      ).argParser(fraction),
    )
    .option(
      '--node-cert-expiration-seconds <s>',
      "TLS bootstrap: ask for certificates valid this long (CSR expirationSeconds, min 600); default: the signer's duration",
      expirationSeconds,
    )
    .option('--node-name <name>', 'name of the node to register', nodeName, 'aci-connector')
    .option(
      '--node-ip <ip>',
      "the node's InternalIP and every pod's hostIP (env POD_IP)",
      env.POD_IP ?? env.VKUBELET_POD_IP ?? '127.0.0.1',
    )
    .addOption(new Option('--provider <name>', 'backend that runs the pods').choices(['aci', 'mock']).default('aci'))
    .option(
      '--taint <key[=value]:Effect>',
      `taint of the node; repeat for several, "none" for none (default: ${DEFAULT_TAINT})`,
      collect,
    )
    .option(
      '--kube-api-qps <n>',
      "sustained requests per second to the API server (a safety valve; the API server's priority and fairness shares the load)",
      positiveNumber,
      1000,
    )
    .option('--kube-api-burst <n>', 'requests allowed in a burst above the QPS', positiveInt, 2000)
    .option('--workers <n>', 'pods reconciled concurrently', positiveInt, 50)
    .option(
      '--kubelet-port <port>',
      'port of the kubelet API (logs, exec, attach) advertised in the node (0: any free port)',
      port,
      10250,
    )
    .option('--kubelet-address <ip>', 'address the kubelet API binds', '0.0.0.0')
    .option('--kubelet-tls-cert <path>', 'serving certificate of the kubelet API (default: a self-signed one)')
    .option('--kubelet-tls-key <path>', 'key of --kubelet-tls-cert')
    .option(
      '--kubelet-client-ca <path>',
      'CA that client certificates of kubelet API callers (the API server) must chain to; without it only bearer tokens authenticate',
    )
    .addOption(
      new Option(
        '--kubelet-authorization-mode <mode>',
        'Webhook: a SubjectAccessReview per kubelet API request; AlwaysAllow: none (local debugging only)',
      )
        .choices(['Webhook', 'AlwaysAllow'])
        .default('Webhook'),
    )
    .option(
      '--kubelet-anonymous-auth',
      'let kubelet API requests without credentials through as system:anonymous (still authorized)',
      false,
    )
    .option('--metrics-port <port>', 'port of /healthz, /readyz and /metrics (0: any free port)', port, 10255)
    .option('--metrics-address <ip>', 'address the operations endpoint binds', '0.0.0.0')
    .option(
      '--metrics-require-auth',
      "serve the operations endpoint over TLS (the kubelet API's certificate) and let only callers authorized for nodes/metrics read /metrics; /healthz and /readyz stay open",
      false,
    )
    .option(
      '--leader-elect',
      'run as one of several replicas for the node: only the holder of a Lease in the connector namespace writes (registers the node, writes pod status, calls the backend); the others keep warm caches and take over when it goes',
      false,
    )
    .option(
      '--leader-elect-kubeconfig <path>',
      "kubeconfig of the identity that holds the leader Lease (the node identity may not: NodeRestriction); default: the pod's ServiceAccount in a cluster, else the main credentials",
    )
    .option(
      '--leader-elect-resource-namespace <ns>',
      "namespace of the leader Lease (default: $POD_NAMESPACE, else the pod's ServiceAccount namespace, else default)",
    )
    .option('--leader-elect-resource-name <name>', 'name of the leader Lease (default: <node-name>-leader)', nodeName)
    .option(
      '--leader-elect-lease-duration <d>',
      'how long followers wait, from the last renew they saw, before taking the lease (whole seconds)',
      duration,
      15_000,
    )
    .option(
      '--leader-elect-renew-deadline <d>',
      'how long after its last successful renew the leader still writes; shorter than the lease duration (the fence)',
      duration,
      10_000,
    )
    .option('--leader-elect-retry-period <d>', 'time between tries to renew or take the lease', duration, 2_000)
    .option('--log-level <level>', `one of ${LOG_LEVELS.join(', ')}`, logLevel, env.LOG_LEVEL ?? 'info')
    .option('--mock-start-delay-ms <ms>', 'mock provider: ms before a pod is Running', nonNegativeInt, 0)
    .option('--mock-state-file <path>', "mock provider: JSON file keeping the backend's pods across restarts")
    .option('--mock-health-file <path>', 'mock provider: while this file exists the backend reports unhealthy')
    .configureOutput({ outputError: (str, write) => write(`aci-connector: ${str}`) })
    .allowExcessArguments(false);
}
