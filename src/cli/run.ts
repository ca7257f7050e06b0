/**
 * Starts the connector from parsed flags: checks the cluster is reachable,
 * builds the provider, serves the kubelet API, runs until SIGTERM/SIGINT.
 * Loaded only after the flags parsed, so --help and --version do not pay for
 * loading the Kubernetes client.
 */
import * as k8s from '@kubernetes/client-node';
import type { Registry } from 'prom-client';
import { createLogger, type Logger } from '../common/logger.js';
import { createMetrics } from '../common/metrics.js';
import { Connector, clusterIdentity } from '../core/connector.js';
import { KubeConfigError, loadKubeConfig } from '../core/kube-client.js';
import type { Provider, ProviderConfig } from '../core/provider.js';
import { parseTaints, TaintError } from '../core/taints.js';
import { createMockProvider } from '../providers/mock/index.js';
import type { CliOptions } from './options.js';

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
    throw new ConfigError(`the ACI provider is not available in this build (${(err as Error).message})`);
  }
  let aciConfig;
  try {
    aciConfig = aci.loadAciConfig(config.env);
  } catch (err) {
    if (err instanceof aci.AciConfigError) throw new ConfigError(`ACI provider configuration: ${err.message}`);
    throw err;
  }
  return aci.createAciProvider({ config: aciConfig, clusterId: config.clusterId, nodeName: config.nodeName, metricsRegistry: registry });
}

export async function run(opts: CliOptions, version: string): Promise<void> {
  let taints;
  try {
    taints = parseTaints(opts.taint);
  } catch (err) {
    if (err instanceof TaintError) throw new ConfigError(err.message);
    throw err;
  }
  const log: Logger = createLogger(opts.logLevel as Parameters<typeof createLogger>[0]);
  const kc = loadKubeConfig(opts.kubeconfig);
  const server = kc.getCurrentCluster()?.server ?? '(none)';

  const core = kc.makeApiClient(k8s.CoreV1Api);
  try {
    await withTimeout(kc.makeApiClient(k8s.VersionApi).getCode(), 15_000, `the API server at ${server}`);
  } catch (err) {
    throw new ConfigError(`cannot reach the API server at ${server}: ${(err as Error).message}`);
  }
  let clusterId: string;
  try {
    clusterId = await withTimeout(clusterIdentity(core), 15_000, `the API server at ${server}`);
  } catch (err) {
    throw new ConfigError(`cannot read the cluster identity (namespace kube-system; examples/rbac.yaml grants nodes get on it) from ${server}: ${(err as Error).message}`);
  }

  const metrics = createMetrics();
  const provider = await loadProvider(
    opts,
    {
      nodeName: opts.nodeName,
      clusterId,
      nodeIP: opts.nodeIp,
      configFile: opts.providerConfig,
      env: process.env,
      log: log.child({ component: 'provider' }),
    },
    metrics.registry,
  );

  // The kubelet API (logs, exec, attach) listens before the node is registered, so the
  // node advertises the port actually bound (--kubelet-port 0 picks a free one).
  const kubeletApi = await import('../kubelet-api/index.js');
  let tls;
  try {
    tls = kubeletApi.loadKubeletTls(
      { certFile: opts.kubeletTlsCert, keyFile: opts.kubeletTlsKey, clientCAFile: opts.kubeletClientCa },
      [opts.nodeName, opts.nodeIp],
    );
  } catch (err) {
    if (err instanceof kubeletApi.KubeletTlsError) throw new ConfigError(err.message);
    throw err;
  }
  // Filled in below; the kubelet API answers 404 for pods until then.
  const started: { connector?: Connector } = {};
  let kubeletServer;
  try {
    kubeletServer = await kubeletApi.startKubeletApi({
      port: opts.kubeletPort,
      address: opts.kubeletAddress,
      tls,
      provider,
      nodeName: opts.nodeName,
      lookupPod: (ns, name) => started.connector?.pods.lookupPod(ns, name),
      listPods: () => started.connector?.pods.listPods() ?? [],
      log: log.child({ component: 'kubelet-api' }),
    });
  } catch (err) {
    throw new ConfigError(`cannot serve the kubelet API on ${opts.kubeletAddress}:${opts.kubeletPort}: ${(err as Error).message}`);
  }
  const kubeletPort = kubeletServer.port ?? opts.kubeletPort;
  log.info({ port: kubeletPort, selfSigned: tls.selfSigned, clientAuth: tls.clientCA !== undefined }, 'kubelet API listening');

  const connector = new Connector({
    kc,
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
    version,
    log,
    metrics,
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
    Promise.all([running.stop(), kubeletServer.close()]).then(
      () => {
        log.info('stopped');
        log.flush();
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err: (err as Error).message }, 'error while stopping');
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

/** The one line printed for a failure at start. */
export function startupErrorMessage(err: unknown): string {
  if (err instanceof ConfigError || err instanceof KubeConfigError) return err.message;
  return err instanceof Error ? err.message : String(err);
}
