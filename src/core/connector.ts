/**
 * Wires the node controller, the pod controller and the operations endpoint
 * around one provider. Stopping leaves every pod running and the node in place.
 */
import type * as k8s from '@kubernetes/client-node';
import type { V1Taint } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import type { ConnectorMetrics } from '../common/metrics.js';
import { EventRecorder } from './events.js';
import { makeKubeClients, type KubeClients } from './kube-client.js';
import { kubeNodeApi, NodeController } from './node-controller.js';
import { OpsServer, type OpsSecurity } from './ops-server.js';
import { PodController } from './pods/controller.js';
import { kubePodSource, kubePodWriter } from './pods/kube.js';
import type { Provider } from './provider.js';
import { ReferenceResolver } from './references.js';
import { ServiceAccountTokens } from './sa-tokens.js';

export interface ConnectorOptions {
  kc: k8s.KubeConfig;
  provider: Provider;
  nodeName: string;
  nodeIP: string;
  taints: V1Taint[];
  qps: number;
  burst: number;
  workers: number;
  kubeletPort: number;
  /** undefined: no operations endpoint. */
  metricsPort?: number;
  metricsAddress?: string;
  /** HTTPS and a /metrics guard for the operations endpoint; undefined: plain HTTP, open. */
  metricsSecurity?: OpsSecurity;
  version: string;
  log: Logger;
  metrics: ConnectorMetrics;
}

/** The UID of kube-system: a stable identity of the cluster for tagging backend objects. */
export async function clusterIdentity(core: k8s.CoreV1Api): Promise<string> {
  const ns = await core.readNamespace({ name: 'kube-system' });
  const uid = ns.metadata?.uid;
  if (!uid) throw new Error('the kube-system namespace has no uid');
  return uid;
}

export class Connector {
  readonly clients: KubeClients;
  readonly node: NodeController;
  readonly pods: PodController;
  private readonly events: EventRecorder;
  /** The Secrets and ConfigMaps the node's pods reference, watched one by one. */
  readonly refs: ReferenceResolver;
  private readonly ops: OpsServer | undefined;
  private started = false;
  metricsPort: number | undefined;

  constructor(private readonly o: ConnectorOptions) {
    this.clients = makeKubeClients(o.kc, { qps: o.qps, burst: o.burst, metrics: o.metrics });
    // Events get their own budget so they never hold up pod work.
    const eventClients = makeKubeClients(o.kc, {
      qps: Math.max(1, o.qps / 2),
      burst: Math.max(1, Math.floor(o.burst / 2)),
      metrics: o.metrics,
    });
    // ...and wait while pod work is queued (status writes first), at most 2 s.
    this.events = new EventRecorder(eventClients.core, o.nodeName, o.log.child({ component: 'events' }), 4, {
      busy: () => this.pods.queueDepth > 0,
    });
    const nodeLog = o.log.child({ component: 'node' });
    // The node's status and Lease get their own budget too (a kubelet's heartbeat client): the node's
    // Ready write at start must not queue behind the status writes of a burst of pods.
    const nodeClients = makeKubeClients(o.kc, { qps: o.qps, burst: o.burst, metrics: o.metrics });
    this.node = new NodeController({
      api: kubeNodeApi(nodeClients, nodeLog),
      provider: o.provider,
      nodeName: o.nodeName,
      nodeIP: o.nodeIP,
      taints: o.taints,
      kubeletPort: o.kubeletPort,
      version: o.version,
      log: nodeLog,
      // NotReady until the pods are reconciled with the backend (a kubelet is not Ready before it synced).
      startupGate: () => this.pods.startupHealth,
    });
    const podLog = o.log.child({ component: 'pods' });
    this.refs = new ReferenceResolver({
      kc: o.kc,
      core: this.clients.core,
      log: podLog,
      onChange: (kind, namespace, name) => this.pods.referenceChanged(kind, namespace, name),
    });
    this.pods = new PodController({
      provider: o.provider,
      pods: kubePodSource(this.clients, o.nodeName, podLog),
      writer: kubePodWriter(this.clients),
      events: this.events,
      refs: this.refs,
      tokens: new ServiceAccountTokens(this.clients.core),
      nodeIP: o.nodeIP,
      workers: o.workers,
      log: podLog,
      metrics: o.metrics,
      onStartupChange: () => void this.node.refresh(),
      // Awaited before the first pod is admitted: resourceFieldRef of a container without limits needs it.
      allocatable: async () => {
        const info = this.node.info ?? (await o.provider.nodeInfo().catch(() => undefined));
        return info ? (info.allocatable ?? info.capacity) : undefined;
      },
    });
    if (o.metricsPort !== undefined) {
      this.ops = new OpsServer(
        {
          metrics: o.metrics,
          notReadyReason: () => (!this.started ? 'starting' : !this.node.ready ? 'node not registered' : undefined),
          beforeScrape: () => {
            for (const [phase, n] of Object.entries(this.pods.podsByPhase())) o.metrics.podsByPhase.set({ phase }, n);
            o.metrics.queueDepth.set(this.pods.queueDepth);
          },
        },
        o.metricsSecurity,
      );
    }
  }

  async start(): Promise<void> {
    if (this.ops) {
      this.metricsPort = await this.ops.listen(this.o.metricsPort ?? 0, this.o.metricsAddress);
      this.o.log.info({ port: this.metricsPort }, 'operations endpoint listening');
    }
    await this.node.start();
    if (!this.node.ready) return; // stopped meanwhile
    this.o.log.info({ node: this.o.nodeName }, 'node registered; Ready once the pods are reconciled');
    await this.pods.start();
    if (this.pods.startupHealth) return; // stopped before the first list
    await this.node.refresh();
    this.started = true;
    this.o.log.info({ node: this.o.nodeName }, 'pod controller running');
  }

  async stop(): Promise<void> {
    this.started = false;
    await this.pods.stop();
    await this.refs.stop();
    await this.node.stop();
    await this.events.flush(2000);
    this.events.close();
    await this.o.provider.close?.();
    await this.ops?.close();
  }
}
