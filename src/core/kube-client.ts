/**
 * Kubernetes API clients with a client-side rate limit and request metrics.
 * @kubernetes/client-node has no QPS limit of its own, so every generated-API
 * request passes a token bucket in a promise middleware. Watches (long-lived
 * streams) are not limited, as in client-go.
 *
 * Two costs of client-node are cut here, as the benchmark's CPU profile showed them on the
 * hot path: its HTTP library (node-fetch, with a Headers object and stream wrappers per
 * request) is replaced by plain node:https, and `json()` sends a request through the same
 * limiter, authentication and agent but returns the parsed JSON without the generated
 * models' deserialization (a walk over the whole object graph per response).
 */
import * as k8s from '@kubernetes/client-node';
import { ServerConfiguration, createConfiguration } from '@kubernetes/client-node';
import type { ConnectorMetrics } from '../common/metrics.js';
import { TokenBucket } from '../common/token-bucket.js';
import http from 'node:http';
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
  /**
   * One request on the same budget, credentials and connections as the typed clients, answering
   * the parsed JSON body (no model classes). Throws k8s.ApiException (with `code`) on HTTP errors.
   */
  json(method: 'GET' | 'PATCH' | 'DELETE' | 'POST' | 'PUT', path: string, opts?: JsonRequest): Promise<unknown>;
}

export interface JsonRequest {
  body?: unknown;
  contentType?: string;
  query?: Record<string, string>;
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
  const inner = nodeHttpLibrary();
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
  const server = cluster.server.replace(/\/+$/, '');
  const json: KubeClients['json'] = async (method, path, o = {}) => {
    const url = new URL(server + path);
    for (const [k, v] of Object.entries(o.query ?? {})) url.searchParams.set(k, v);
    const ctx = new k8s.RequestContext(url.toString(), method as k8s.HttpMethod);
    ctx.setHeaderParam('Accept', 'application/json');
    if (o.body !== undefined) {
      ctx.setHeaderParam('Content-Type', o.contentType ?? 'application/json');
      ctx.setBody(JSON.stringify(o.body));
    }
    await auth.applySecurityAuthentication(ctx);
    const res = await httpApi.send(ctx).toPromise();
    const text = await res.body.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (an error page): kept as text
    }
    if (res.httpStatusCode >= 400) {
      const message = (parsed as { message?: string } | undefined)?.message ?? text.slice(0, 300);
      throw new k8s.ApiException(res.httpStatusCode, message, parsed, res.headers);
    }
    return parsed;
  };
  return {
    kc,
    json,
    core: new k8s.CoreV1Api(config),
    coordination: new k8s.CoordinationV1Api(config),
    authentication: new k8s.AuthenticationV1Api(config),
    authorization: new k8s.AuthorizationV1Api(config),
    limiter,
  };
}

/**
 * client-node's HttpLibrary on node:http(s): the request's agent (ours, keep-alive, or a proxy
 * agent), headers and body as given; the body is read whole (API answers are small JSON).
 */
function nodeHttpLibrary(): k8s.HttpLibrary {
  return {
    send(req: k8s.RequestContext): k8s.Observable<k8s.ResponseContext> {
      const done = new Promise<k8s.ResponseContext>((resolve, reject) => {
        const url = req.getUrl();
        const lib = url.startsWith('https:') ? https : http;
        const body = req.getBody() as string | Buffer | undefined;
        const headers: Record<string, string> = { ...req.getHeaders() };
        if (body !== undefined && headers['Content-Length'] === undefined)
          headers['Content-Length'] = String(Buffer.byteLength(body));
        const signal = req.getSignal();
        const r = lib.request(
          url,
          {
            method: req.getHttpMethod().toString(),
            headers,
            agent: req.getAgent(),
            ...(signal ? { signal } : {}),
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('error', reject);
            res.on('end', () => {
              const buf = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
              const h: Record<string, string> = {};
              for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h[k] = String(v);
              resolve(
                new k8s.ResponseContext(res.statusCode ?? 0, h, {
                  text: async () => buf.toString('utf8'),
                  binary: async () => buf,
                }),
              );
            });
          },
        );
        r.on('error', reject);
        if (body !== undefined) r.end(body);
        else r.end();
      });
      return new k8s.Observable(done);
    },
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
  // client-node reads the kubeconfig's certificate and key files again for every request (a third of
  // a millisecond each, in the benchmark's profile). The headers it adds are reused for AUTH_REUSE_MS
  // (a token file or an exec plugin refreshes far less often), and at once not when the user changes
  // (node certificate rotation replaces it: loadFromOptions).
  let cached: { at: number; user: unknown; headers: Array<[string, string]> } | undefined;
  return {
    getName: () => 'kubeconfig-keepalive',
    async applySecurityAuthentication(ctx: k8s.RequestContext): Promise<void> {
      const user = kc.getCurrentUser();
      if (reusable && shared && cached && cached.user === user && Date.now() - cached.at < AUTH_REUSE_MS) {
        for (const [k, v] of cached.headers) ctx.setHeaderParam(k, v);
        ctx.setAgent(shared);
        return;
      }
      const before = { ...ctx.getHeaders() };
      await kc.applySecurityAuthentication(ctx);
      if (!reusable) return;
      const added = Object.entries(ctx.getHeaders()).filter(([k, v]) => before[k] !== v);
      cached = { at: Date.now(), user, headers: added };
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

const AUTH_REUSE_MS = 1000;

function sameBytes(a: unknown, b: unknown): boolean {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return a.equals(b);
  return a === b;
}

/** Closes an agent's idle connections now and each busy one when its request ends. */
function retire(agent: https.Agent): void {
  agent.on('free', (socket: import('node:net').Socket) => socket.destroy());
  for (const list of Object.values(agent.freeSockets)) for (const socket of list ?? []) socket.destroy();
}
