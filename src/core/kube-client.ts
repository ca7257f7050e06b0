/**
 * Kubernetes API clients with a client-side rate limit and request metrics.
 * @kubernetes/client-node has no QPS limit of its own, so every generated-API
 * request passes a token bucket in a promise middleware. Watches (long-lived
 * streams) are not limited, as in client-go.
 */
import * as k8s from '@kubernetes/client-node';
import { ServerConfiguration, createConfiguration } from '@kubernetes/client-node';
import type { ConnectorMetrics } from '../common/metrics.js';
import { TokenBucket } from '../common/token-bucket.js';
import https from 'node:https';
import { errorMessage } from '../common/errors.js';
import { isWriteVerb } from './leader/gate.js';

export interface KubeClients {
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  coordination: k8s.CoordinationV1Api;
  /** TokenReviews and SubjectAccessReviews for the kubelet API. */
  authentication: k8s.AuthenticationV1Api;
  authorization: k8s.AuthorizationV1Api;
  limiter: TokenBucket;
}

export class KubeConfigError extends Error {
  override readonly name = 'KubeConfigError';
}

/** --kubeconfig, else in-cluster, else $KUBECONFIG (or ~/.kube/config). */
export function loadKubeConfig(path: string | undefined): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  try {
    if (path) kc.loadFromFile(path);
    else if (process.env.KUBERNETES_SERVICE_HOST && process.env.KUBERNETES_SERVICE_PORT) kc.loadFromCluster();
    else kc.loadFromDefault();
  } catch (err) {
    throw new KubeConfigError(
      `cannot load kubeconfig ${path ?? process.env.KUBECONFIG ?? '(default)'}: ${errorMessage(err)}`,
    );
  }
  if (!kc.getCurrentCluster()) {
    throw new KubeConfigError(
      `no cluster in kubeconfig ${path ?? process.env.KUBECONFIG ?? '(default)'}: pass --kubeconfig or set KUBECONFIG`,
    );
  }
  return kc;
}

/** 'pods/status' from '/api/v1/namespaces/ns/pods/name/status?x'. */
export function resourceOfUrl(url: string): string {
  let path: string;
  try {
    path = new URL(url).pathname;
  } catch {
    path = url.split('?')[0] ?? url;
  }
  const segs = path.split('/').filter(Boolean);
  let i = segs[0] === 'api' ? 2 : segs[0] === 'apis' ? 3 : 0;
  if (segs[i] === 'namespaces' && segs.length > i + 2) i += 2;
  const resource = segs[i] ?? 'unknown';
  const sub = segs[i + 2];
  return sub ? `${resource}/${sub}` : resource;
}

export function makeKubeClients(
  kc: k8s.KubeConfig,
  opts: {
    qps: number;
    burst: number;
    metrics?: ConnectorMetrics;
    /** Asked before each write leaves, after the rate limit's wait (the HA fence: core/leader); throws to refuse. */
    writeGate?: (verb: string, resource: string) => void;
  },
): KubeClients {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new KubeConfigError('no current cluster in kubeconfig');
  const limiter = new TokenBucket({ perSecond: opts.qps, burst: opts.burst });
  const metrics = opts.metrics;
  const auth = keepAliveAuth(kc);
  const base = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: auth },
  });
  const inner = base.httpApi;
  // Wrapping the HTTP library (not a middleware) sees request and response together.
  const httpApi: k8s.HttpLibrary = {
    send(req: k8s.RequestContext): k8s.Observable<k8s.ResponseContext> {
      const run = async (): Promise<k8s.ResponseContext> => {
        await limiter.take();
        const labels = { verb: req.getHttpMethod(), resource: resourceOfUrl(req.getUrl()), code: 'error' };
        if (opts.writeGate && isWriteVerb(labels.verb)) opts.writeGate(labels.verb, labels.resource);
        try {
          const res = await inner.send(req).toPromise();
          labels.code = String(res.httpStatusCode);
          return res;
        } finally {
          metrics?.apiRequests.inc(labels);
          if (labels.code === 'error' || Number(labels.code) >= 400) metrics?.apiErrors.inc(labels);
        }
      };
      return new k8s.Observable(run());
    },
  };
  const config = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: auth },
    httpApi,
  });
  return {
    kc,
    core: new k8s.CoreV1Api(config),
    coordination: new k8s.CoordinationV1Api(config),
    authentication: new k8s.AuthenticationV1Api(config),
    authorization: new k8s.AuthorizationV1Api(config),
    limiter,
  };
}

/**
 * client-node creates a fresh https.Agent per request, so every call pays a TLS
 * handshake. This keeps its authentication (headers, client certs) but reuses
 * one keep-alive agent built from the first agent's TLS options.
 *
 * When the KubeConfig's client certificate changes (node certificate rotation,
 * src/core/node-credentials), a new shared agent is built and the old one's
 * connections are closed once idle, so later requests authenticate with the new
 * certificate while requests in flight finish on the old one.
 */
function keepAliveAuth(kc: k8s.KubeConfig): k8s.SecurityAuthentication {
  let shared: https.Agent | undefined;
  let sharedCert: unknown;
  const cluster = kc.getCurrentCluster();
  const reusable = Boolean(cluster && cluster.server.startsWith('https') && !cluster.proxyUrl);
  return {
    getName: () => 'kubeconfig-keepalive',
    async applySecurityAuthentication(ctx: k8s.RequestContext): Promise<void> {
      await kc.applySecurityAuthentication(ctx);
      if (!reusable) return;
      const fresh = ctx.getAgent();
      if (fresh instanceof https.Agent && shared && !sameBytes(fresh.options.cert, sharedCert)) {
        retire(shared);
        shared = undefined;
      }
      if (!shared && fresh instanceof https.Agent) {
        shared = new https.Agent({ ...fresh.options, keepAlive: true, maxSockets: 128 });
        sharedCert = fresh.options.cert;
      }
      if (shared) ctx.setAgent(shared);
      if (fresh instanceof https.Agent && fresh !== shared) fresh.destroy();
    },
  };
}

function sameBytes(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return a === b;
}

/** Closes an agent's idle connections now and each busy one when its request ends. */
function retire(agent: https.Agent): void {
  agent.on('free', (socket: import('node:net').Socket) => socket.destroy());
  for (const list of Object.values(agent.freeSockets)) for (const socket of list ?? []) socket.destroy();
}
