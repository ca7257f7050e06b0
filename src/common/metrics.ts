/**
 * The connector's own Prometheus metrics. One registry per connector instance,
 * so tests can run several in one process without name clashes.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface ConnectorMetrics {
  registry: Registry;
  podsByPhase: Gauge<'phase'>;
  reconcileSeconds: Histogram<'result'>;
  queueDepth: Gauge;
  apiRequests: Counter<'verb' | 'resource' | 'code'>;
  apiErrors: Counter<'verb' | 'resource' | 'code'>;
  providerCallSeconds: Histogram<'op' | 'result'>;
  statusWrites: Counter;
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}): ConnectorMetrics {
  const registry = new Registry();
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'aci_connector_' });
  const latencyBuckets = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  return {
    registry,
    podsByPhase: new Gauge({
      name: 'aci_connector_pods',
      help: 'Pods bound to this node, by phase.',
      labelNames: ['phase'],
      registers: [registry],
    }),
    reconcileSeconds: new Histogram({
      name: 'aci_connector_pod_reconcile_seconds',
      help: 'Time to reconcile one pod key.',
      labelNames: ['result'],
      buckets: latencyBuckets,
      registers: [registry],
    }),
    queueDepth: new Gauge({
      name: 'aci_connector_workqueue_depth',
      help: 'Pod keys waiting in the work queue (ready or backing off).',
      registers: [registry],
    }),
    apiRequests: new Counter({
      name: 'aci_connector_kube_api_requests_total',
      help: 'Requests to the Kubernetes API server, by verb, resource and status code.',
      labelNames: ['verb', 'resource', 'code'],
      registers: [registry],
    }),
    apiErrors: new Counter({
      name: 'aci_connector_kube_api_errors_total',
      help: 'Kubernetes API requests that failed (status >= 400 or no response).',
      labelNames: ['verb', 'resource', 'code'],
      registers: [registry],
    }),
    providerCallSeconds: new Histogram({
      name: 'aci_connector_provider_call_seconds',
      help: 'Latency of provider calls, by operation and result.',
      labelNames: ['op', 'result'],
      buckets: latencyBuckets,
      registers: [registry],
    }),
    statusWrites: new Counter({
      name: 'aci_connector_pod_status_writes_total',
      help: 'Pod status patches sent to the API server.',
      registers: [registry],
    }),
  };
}
