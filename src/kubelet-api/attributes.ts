/**
 * What a kubelet API request asks for, in authorization terms: the kubelet's
 * own mapping (pkg/kubelet/server/auth.go, GetRequestAttributes, v1.36 with
 * KubeletFineGrainedAuthz, GA and locked on there), read from the sources:
 *
 *   verb        from the HTTP method: GET get, POST create, PUT update, PATCH patch, DELETE delete
 *   resource    nodes, name = the node's name, apiVersion v1, core group
 *   subresource /stats/* stats, /metrics/* metrics, /logs/* log, /checkpoint/* checkpoint,
 *               /statusz statusz, /flagz configz, /spec/* spec (older kubelets; current ones dropped it, we serve it);
 *               /pods and /runningpods [pods, proxy], /healthz [healthz, proxy],
 *               /configz [configz, proxy]: the fine-grained one first, proxy as the fallback;
 *               every other path (exec, attach, portForward, run, containerLogs, …) proxy.
 *
 * One deliberate difference: /exec, /attach, /portForward and /run are always
 * `create`. The kubelet maps a WebSocket upgrade (a GET) to `get`, so `get` on
 * nodes/proxy, often granted to monitoring as read-only, runs commands in every
 * container (kubernetes/kubernetes#136550, kubernetes/website#54191). The API
 * server already closed the same hole for pods/exec (KEP-4006); the API server's
 * own kubelet client holds `*` on nodes/proxy, so nothing that works breaks.
 */
import type { ResourceAttributes } from '../core/access-reviews.js';

/** Kubernetes' verb for an HTTP method; undefined for methods the kubelet API never serves. */
export function verbOf(method: string): string | undefined {
  switch (method.toUpperCase()) {
    case 'GET':
    case 'HEAD': // a GET without the body; the kubelet leaves the verb empty, which no RBAC rule but `*` matches
      return 'get';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return 'delete';
    default:
      return undefined;
  }
}

/** Paths whose fine-grained subresource is tried before `proxy`. */
const FINE_GRAINED = new Map([
  ['pods', 'pods'],
  ['runningpods', 'pods'],
  ['healthz', 'healthz'],
  ['configz', 'configz'],
]);

/** Paths with their own subresource and no fallback. */
const OWN = new Map([
  ['stats', 'stats'],
  ['metrics', 'metrics'],
  ['logs', 'log'],
  ['spec', 'spec'],
  ['checkpoint', 'checkpoint'],
  ['statusz', 'statusz'],
  ['flagz', 'configz'],
]);

/** Endpoints that run or reach into a container: `create` whatever the method (see above). */
const ALWAYS_CREATE = new Set(['exec', 'attach', 'portForward', 'run']);

/**
 * The attributes to authorize, in order; the request is allowed when any one is.
 * `head` is the first decoded path segment as the router sees it (so the two
 * can never disagree about which handler a path reaches); `verb` from {@link verbOf}.
 */
export function requestAttributes(head: string | undefined, verb: string, nodeName: string): ResourceAttributes[] {
  const subresources: string[] = [];
  const h = head ?? '';
  const fine = FINE_GRAINED.get(h);
  if (fine) subresources.push(fine);
  subresources.push(OWN.get(h) ?? 'proxy');
  const v = ALWAYS_CREATE.has(h) ? 'create' : verb;
  return subresources.map((subresource) => ({
    verb: v,
    group: '',
    version: 'v1',
    resource: 'nodes',
    subresource,
    name: nodeName,
  }));
}
