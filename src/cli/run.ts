/**
 * Starts the connector from parsed flags: checks the cluster is reachable,
 * builds the provider, serves the kubelet API, runs until SIGTERM/SIGINT.
 * Loaded only after the flags parsed, so --help and --version do not pay for
 * loading the Kubernetes client. @kubernetes/client-node is never loaded on the normal path (its
 * types only): TLS bootstrap and exotic kubeconfigs import it lazily (src/core/kube/config.ts).
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../common/logger.js';
import { createMetrics } from '../common/metrics.js';
import { Connector, clusterIdentity } from '../core/connector.js';
import { KubeAccessReviews } from '../core/access-reviews.js';
import { KubeConfigError, loadKubeAccess, makeKubeClients, type KubeAccess } from '../core/kube-client.js';
import { clientNodeKubeConfig } from '../core/kube/config.js';
import type { NodeCredentials } from '../core/node-credentials/index.js';
import type { Provider, ProviderConfig } from '../core/provider.js';
import { parseTaints, TaintError } from '../core/taints.js';
import { checkTiming, defaultIdentity, ElectorTimingError } from '../core/leader/elector.js';
import { ownNamespace } from '../core/leader/lease-lock.js';
import { createMockProvider } from '../providers/mock/index.js';
import type { CliOptions } from './options.js';
import { errorMessage } from '../common/errors.js';

export class ConfigError extends Error {}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms / 1000} s`)), ms);
      }),
    ]);
  } finally {
    if (timer) clearTimeout(timer);
  }
}

async function loadProvider(opts: CliOptions, config: ProviderConfig, registry: Registry): Promise<Provider> {
  if (opts.provider === 'mock') {
    return createMockProvider(config, {
      startDelayMs: opts.mockStartDelayMs,
      stateFile: opts.mockStateFile,
      healthFile: opts.mockHealthFile,
    });
  }
  // Loaded lazily so the mock path never pulls in the Azure SDK.
  let aci: typeof import('../providers/aci/index.js');
  try {
    aci = await import('../providers/aci/index.js');
  } catch (err) {
    throw new ConfigError(`the ACI provider is not available in this build (${errorMessage(err)})`);
  }
  let aciConfig;
  try {
    // Several targets (ACI_TARGETS): one node placing each pod on one of them.
    const targets = aci.loadAciTargets(config.env);
    if (targets)
      return aci.createMultiTargetProvider(targets, {
        clusterId: config.clusterId,
        nodeName: config.nodeName,
        metricsRegistry: registry,
        log: config.log,
      });
    aciConfig = aci.loadAciConfig(config.env);
  } catch (err) {
    if (err instanceof aci.AciConfigError) throw new ConfigError(`ACI provider configuration: ${err.message}`);
    throw err;
  }
  return aci.createAciProvider({
    config: aciConfig,
    clusterId: config.clusterId,
    nodeName: config.nodeName,
    metricsRegistry: registry,
    log: config.log,
  });
}

export async function run(opts: CliOptions, version: string): Promise<void> {
  let taints;
  try {
    taints = parseTaints(opts.taint);
  } catch (err) {
    if (err instanceof TaintError) throw new ConfigError(err.message);
    throw err;
  }
  const timing = {
    leaseDurationMs: opts.leaderElectLeaseDuration,
    renewDeadlineMs: opts.leaderElectRenewDeadline,
    retryPeriodMs: opts.leaderElectRetryPeriod,
  };
  if (opts.leaderElect) {
    try {
      checkTiming(timing);
    } catch (err) {
      if (err instanceof ElectorTimingError) throw new ConfigError(`--leader-elect: ${err.message}`);
      throw err;
    }
  }
  const log: Logger = createLogger(opts.logLevel as Parameters<typeof createLogger>[0]);
  // Started now, awaited below: the kubelet API's modules and serving certificate, and the ACI
  // provider's modules (the Azure SDK), load while the API server answers the first calls.
  const kubeletApiModule = import('../kubelet-api/index.js');
  kubeletApiModule.catch(() => undefined);
  const kubeletTls = kubeletApiModule.then((k) =>
    k.loadKubeletTls(
      { certFile: opts.kubeletTlsCert, keyFile: opts.kubeletTlsKey, clientCAFile: opts.kubeletClientCa },
      [opts.nodeName, opts.nodeIp],
    ),
  );
  kubeletTls.catch(() => undefined);
  if (opts.provider !== 'mock') void import('../providers/aci/index.js').catch(() => undefined);
  const { kc, credentials } = await kubeConfigFor(opts, log);
  // The first calls' client; its credentials and connections are shared with the connector's.
  const probe = makeKubeClients(kc, { qps: 5, burst: 10 });
  const server = probe.kc.server;
  try {
    await withTimeout(probe.version.getCode(), 15_000, `the API server at ${server}`);
  } catch (err) {
    throw new ConfigError(`cannot reach the API server at ${server}: ${errorMessage(err)}`);
  }
  let clusterId: string;
  try {
    clusterId = await withTimeout(clusterIdentity(probe.core), 15_000, `the API server at ${server}`);
  } catch (err) {
    throw new ConfigError(
      `cannot read the cluster identity (namespace kube-system; examples/rbac.yaml grants nodes get on it) from ${server}: ${errorMessage(err)}`,
    );
  }

  const metrics = createMetrics();
  const provider = await loadProvider(
    opts,
    {
      nodeName: opts.nodeName,
      clusterId,
      nodeIP: opts.nodeIp,
      env: process.env,
      log: log.child({ component: 'provider' }),
    },
    metrics.registry,
  );

  // The kubelet API (logs, exec, attach) listens before the node is registered, so the
  // node advertises the port actually bound (--kubelet-port 0 picks a free one).
  const kubeletApi = await kubeletApiModule;
  let tls;
  try {
    tls = await kubeletTls;
  } catch (err) {
    if (err instanceof kubeletApi.KubeletTlsError) throw new ConfigError(err.message);
    throw err;
  }
  // TokenReviews and SubjectAccessReviews get their own request budget, so pod work never delays `kubectl exec`.
  const reviewClients = makeKubeClients(probe.kc, {
    qps: Math.max(1, opts.kubeApiQps / 2),
    burst: Math.max(1, Math.floor(opts.kubeApiBurst / 2)),
    metrics,
  });
  const reviews = new KubeAccessReviews(reviewClients.authentication, reviewClients.authorization);
  const kubeletLog = log.child({ component: 'kubelet-api' });
  const auth = new kubeletApi.KubeletAuth({
    nodeName: opts.nodeName,
    clientCA: tls.clientCA,
    tokens: reviews,
    access: reviews,
    mode: opts.kubeletAuthorizationMode,
    anonymous: opts.kubeletAnonymousAuth,
    log: kubeletLog,
  });
  if (opts.kubeletAuthorizationMode === 'AlwaysAllow') {
    log.warn(
      'kubelet API authorization is OFF (--kubelet-authorization-mode AlwaysAllow): every authenticated caller may read every pod and exec into it; for local debugging only',
    );
  }
  if (opts.kubeletAnonymousAuth)
    log.warn(
      'the kubelet API lets requests without credentials through as system:anonymous (--kubelet-anonymous-auth)',
    );
  // Filled in below; the kubelet API answers 404 for pods until then.
  const started: { connector?: Connector } = {};
  let kubeletServer;
  try {
    kubeletServer = await kubeletApi.startKubeletApi({
      port: opts.kubeletPort,
      address: opts.kubeletAddress,
      tls,
      auth,
      provider,
      nodeName: opts.nodeName,
      lookupPod: (ns, name) => started.connector?.pods.lookupPod(ns, name),
      listPods: () => started.connector?.pods.listPods() ?? [],
      log: kubeletLog,
    });
  } catch (err) {
    throw new ConfigError(
      `cannot serve the kubelet API on ${opts.kubeletAddress}:${opts.kubeletPort}: ${errorMessage(err)}`,
    );
  }
  const kubeletPort = kubeletServer.port ?? opts.kubeletPort;
  log.info(
    {
      port: kubeletPort,
      selfSigned: tls.selfSigned,
      clientAuth: tls.clientCA !== undefined,
      authorization: opts.kubeletAuthorizationMode,
    },
    'kubelet API listening',
  );

  const connector = new Connector({
    kc: probe.kc,
    provider,
    nodeName: opts.nodeName,
    nodeIP: opts.nodeIp,
    taints,
    qps: opts.kubeApiQps,
    burst: opts.kubeApiBurst,
    workers: opts.workers,
    kubeletPort,
    metricsPort: opts.metricsPort,
    metricsAddress: opts.metricsAddress,
    metricsSecurity: opts.metricsRequireAuth
      ? { tls: kubeletApi.secureServerOptions(tls), guardMetrics: kubeletApi.metricsGuard(auth) }
      : undefined,
    version,
    log,
    metrics,
    leaderElection: opts.leaderElect
      ? {
          ...timing,
          kc: await leaseKubeConfig(opts, probe.kc),
          namespace: opts.leaderElectResourceNamespace ?? ownNamespace(),
          leaseName: opts.leaderElectResourceName ?? `${opts.nodeName}-leader`,
          identity: defaultIdentity(),
          // The fence: exit at once, so nothing queued here (a provider retry, an ARM token wait)
          // can still go out; the Deployment starts this process again, as a follower.
          onLost: (reason) => {
            log.error({ reason }, 'no longer the leader; exiting so that nothing more is written');
            log.flush();
            process.exit(3);
          },
        }
      : undefined,
  });

  started.connector = connector;
  let stopping = false;
  const running = connector;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal; exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping; pods keep running');
    credentials?.stop();
    Promise.all([running.stop(), kubeletServer.close()]).then(
      () => {
        log.info('stopped');
        log.flush();
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err: errorMessage(err) }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  log.info({ node: opts.nodeName, provider: opts.provider, server, version }, 'starting aci-connector');
  try {
    await connector.start();
  } catch (err) {
    if (stopping) return;
    throw err;
  }
}

/**
 * The connector's API credentials: --kubeconfig (or in-cluster, or $KUBECONFIG),
 * or, with --cert-dir / --bootstrap-kubeconfig, the node identity from TLS bootstrap.
 */
async function kubeConfigFor(
  opts: CliOptions,
  log: Logger,
): Promise<{ kc: KubeAccess | KubeConfig; credentials?: NodeCredentials }> {
  if (!opts.certDir && !opts.bootstrapKubeconfig) return { kc: await loadKubeAccess(opts.kubeconfig) };
  if (opts.kubeconfig) {
    throw new ConfigError(
      '--kubeconfig cannot be combined with --cert-dir or --bootstrap-kubeconfig: with TLS bootstrap the connector authenticates with its node certificate',
    );
  }
  if (!opts.certDir)
    throw new ConfigError('--bootstrap-kubeconfig needs --cert-dir (where the node client certificate is kept)');
  // TLS bootstrap (CSR, its watch, the rotating certificate) stays on client-node, loaded only here.
  let bootstrap: KubeConfig;
  if (opts.bootstrapKubeconfig) {
    bootstrap = await clientNodeKubeConfig(opts.bootstrapKubeconfig);
  } else if (process.env.KUBERNETES_SERVICE_HOST && process.env.KUBERNETES_SERVICE_PORT) {
    bootstrap = await clientNodeKubeConfig(undefined);
  } else {
    throw new ConfigError(
      '--cert-dir outside a cluster needs --bootstrap-kubeconfig (the identity that requests the node certificate)',
    );
  }
  const nc = await import('../core/node-credentials/index.js');
  let credentials: NodeCredentials;
  try {
    credentials = new nc.NodeCredentials({
      nodeName: opts.nodeName,
      certDir: opts.certDir,
      bootstrap,
      rotate: opts.rotateCertificates,
      rotationFraction: opts.nodeCertRotationFraction,
      expirationSeconds: opts.nodeCertExpirationSeconds,
      log: log.child({ component: 'node-credentials' }),
    });
    return { kc: await credentials.start(), credentials };
  } catch (err) {
    if (err instanceof nc.NodeCredentialsError || err instanceof nc.CsrError)
      throw new ConfigError(`TLS bootstrap: ${err.message}`);
    throw err;
  }
}

/** The leader Lease's credentials: --leader-elect-kubeconfig, else in a pod its ServiceAccount, else the main ones. */
async function leaseKubeConfig(opts: CliOptions, main: KubeAccess): Promise<KubeAccess> {
  if (opts.leaderElectKubeconfig) return loadKubeAccess(opts.leaderElectKubeconfig);
  if (process.env.KUBERNETES_SERVICE_HOST && process.env.KUBERNETES_SERVICE_PORT) return loadKubeAccess(undefined);
  return main;
}

/** The one line printed for a failure at start. */
export function startupErrorMessage(err: unknown): string {
  if (err instanceof ConfigError || err instanceof KubeConfigError) return err.message;
  return errorMessage(err);
}
