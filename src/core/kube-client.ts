/**
 * Kubernetes API clients with a client-side rate limit and request metrics, on the connector's own
 * small client (`./kube/`): node:https with kept-alive connections, parsed JSON, no generated models.
 * @kubernetes/client-node stays for its types only (type imports, free at run time): loading it costs
 * 0.6 s and ~75 MB before the node can register (docs/decisions.md, issue 15). Every request passes a
 * token bucket (client-node and this client have no QPS limit of their own); watches (long-lived
 * streams, `./kube/reflector.ts`) are not limited, as in client-go.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { ConnectorMetrics } from '../common/metrics.js';
import { TokenBucket } from '../common/token-bucket.js';
import { isWriteVerb } from './leader/gate.js';
import { clientNodeAccess, isClientNodeKubeConfig, type KubeAccess } from './kube/access.js';
import {
  authenticationApi,
  authorizationApi,
  coordinationApi,
  coreApi,
  versionApi,
  type AuthenticationApi,
  type AuthorizationApi,
  type CoordinationApi,
  type CoreApi,
  type JsonCall,
  type VersionApi,
} from './kube/apis.js';
import { apiError, parseBody, send } from './kube/transport.js';

export { KubeConfigError, loadKubeAccess } from './kube/config.js';
export { KubeApiError } from './kube/transport.js';
export type { JsonRequest } from './kube/apis.js';
export type { KubeAccess } from './kube/access.js';

export interface KubeClients {
  /** Where and how to reach the API server (the informers' watches use it, outside the bucket). */
  kc: KubeAccess;
  core: CoreApi;
  coordination: CoordinationApi;
  /** TokenReviews and SubjectAccessReviews for the kubelet API. */
  authentication: AuthenticationApi;
  authorization: AuthorizationApi;
  version: VersionApi;
  limiter: TokenBucket;
  /**
   * One request on this client's budget and credentials, answering the parsed JSON body.
   * Throws KubeApiError (with `code`, the HTTP status) on HTTP errors.
   */
  json: JsonCall;
}

/** 'pods/status' from '/api/v1/namespaces/ns/pods/name/status?x'. */
export function resourceOfUrl(url: string): string {
  let path: string;
  if (url.startsWith('/')) {
    // A path (every call of ours): no URL parse, which throws on a relative URL (a profile's hot spot).
    path = url.split('?')[0] ?? url;
  } else {
    try {
      path = new URL(url).pathname;
    } catch {
      path = url.split('?')[0] ?? url;
    }
  }
  const segs = path.split('/').filter(Boolean);
  let i = segs[0] === 'api' ? 2 : segs[0] === 'apis' ? 3 : 0;
  if (segs[i] === 'namespaces' && segs.length > i + 2) i += 2;
  const resource = segs[i] ?? 'unknown';
  const sub = segs[i + 2];
  return sub ? `${resource}/${sub}` : resource;
}

/** The access for a KubeAccess, or for a client-node KubeConfig (TLS bootstrap's, whose certificate rotates in place). */
export function accessOf(kc: KubeAccess | KubeConfig): KubeAccess {
  return isClientNodeKubeConfig(kc) ? clientNodeAccess(kc) : kc;
}

let clientCount = 0;

export function makeKubeClients(
  kc: KubeAccess | KubeConfig,
  opts: {
    qps: number;
    burst: number;
    metrics?: ConnectorMetrics;
    /** Asked before each write leaves, after the rate limit's wait (the HA fence: core/leader); throws to refuse. */
    writeGate?: (verb: string, resource: string) => void;
  },
): KubeClients {
  const access = accessOf(kc);
  // Sockets of its own (see access.ts), as each client had its own agent before.
  const pool = `client-${++clientCount}`;
  const limiter = new TokenBucket({ perSecond: opts.qps, burst: opts.burst });
  const metrics = opts.metrics;
  const json: JsonCall = async (method, path, o = {}) => {
    let full = path;
    const query = new URLSearchParams(o.query ?? {}).toString();
    if (query) full += (path.includes('?') ? '&' : '?') + query;
    const headers: Record<string, string> = { Accept: 'application/json' };
    let body: string | undefined;
    if (o.body !== undefined) {
      headers['Content-Type'] = o.contentType ?? 'application/json';
      body = JSON.stringify(o.body);
    }
    await limiter.take();
    const labels = { verb: method, resource: resourceOfUrl(path), code: 'error' };
    if (opts.writeGate && isWriteVerb(method)) opts.writeGate(method, labels.resource);
    let res;
    try {
      res = await send(access, { method, path: full, headers, pool, ...(body !== undefined ? { body } : {}) });
      labels.code = String(res.status);
    } finally {
      metrics?.apiRequests.inc(labels);
      if (labels.code === 'error' || Number(labels.code) >= 400) metrics?.apiErrors.inc(labels);
    }
    const text = res.body.toString('utf8');
    if (res.status >= 400) throw apiError(res.status, text, res.headers);
    return parseBody(text);
  };
  return {
    kc: access,
    json,
    core: coreApi(json),
    coordination: coordinationApi(json),
    authentication: authenticationApi(json),
    authorization: authorizationApi(json),
    version: versionApi(json),
    limiter,
  };
}
