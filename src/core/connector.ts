/**
 * Wires the node controller, the pod controller and the operations endpoint
 * around one provider. Stopping leaves every pod running and the node in place.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { V1Taint } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import type { ConnectorMetrics } from '../common/metrics.js';
import { errorMessage } from '../common/errors.js';
import { EventRecorder } from './events.js';
import { accessOf, makeKubeClients, type KubeAccess, type KubeClients } from './kube-client.js';
import type { CoreApi } from './kube/apis.js';
import { LeaderElector, type ElectorTiming } from './leader/elector.js';
import { gatedEvents, gatedProvider, OPEN_GATE, type WriteGate } from './leader/gate.js';
import { kubeLeaseLock } from './leader/lease-lock.js';
import { kubeNodeApi, NodeController } from './node-controller.js';
import { OpsServer, type OpsSecurity } from './ops-server.js';
import { PodController } from './pods/controller.js';
import { kubePodSource, kubePodWriter } from './pods/kube.js';
import type { PodSource } from './pods/deps.js';
import type { Provider } from './provider.js';
import { ReferenceResolver } from './references.js';
import { ServiceAccountTokens } from './sa-tokens.js';

export interface ConnectorOptions {
  /** Ours (`kube/config.ts`), or client-node's with TLS bootstrap (its certificate rotates in place). */
  kc: KubeAccess | KubeConfig;
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
  /** Several replicas for one node: only the holder of this Lease writes. Undefined: this process always writes. */
  leaderElection?: LeaderElectionOptions;
}

export interface LeaderElectionOptions extends ElectorTiming {
  /**
   * Who reads and writes the Lease: not the node identity, which NodeRestriction keeps to its own
   * node Lease in kube-node-lease, but the pod's ServiceAccount (or --leader-elect-kubeconfig).
   */
  kc: KubeAccess | KubeConfig;
  /** The connector's own namespace, where the Lease lives. */
  namespace: string;
  leaseName: string;
  /** Unique per process (hostname_uuid). */
  identity: string;
  /**
   * Called the moment this process, having led, may write no more. The CLI exits there (its
   * Deployment starts it again as a follower): whatever the provider still had queued dies with it.
   */
  onLost: (reason: string) => void;
}

/** The UID of kube-system: a stable identity of the cluster for tagging backend objects. */
export async function clusterIdentity(core: Pick<CoreApi, 'readNamespace'>): Promise<string> {
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
  /** Set with leader election: who writes. */
  readonly elector: LeaderElector | undefined;
  private readonly gate: WriteGate;
  private readonly podSource: PodSource;
  /** Followers: the pod informer synced and the provider listed once, so a takeover starts warm. */
  private warm = false;

  constructor(private readonly o: ConnectorOptions) {
    // One access (credentials and connection pools) for every client of the main identity.
    const kc = accessOf(o.kc);
    const le = o.leaderElection;
    if (le) {
      // The lease has a client of its own: outside the fence (it is how the fence opens) and outside pod work's budget.
      const leaseClients = makeKubeClients(le.kc, { qps: 5, burst: 10, metrics: o.metrics });
      this.elector = new LeaderElector({
        lock: kubeLeaseLock(leaseClients.coordination, le.namespace, le.leaseName),
        identity: le.identity,
        leaseDurationMs: le.leaseDurationMs,
        renewDeadlineMs: le.renewDeadlineMs,
        retryPeriodMs: le.retryPeriodMs,
        log: o.log.child({ component: 'leader' }),
        onStoppedLeading: (reason) => le.onLost(reason),
      });
    }
    const elector = this.elector;
    this.gate = elector ? { allowed: () => elector.allowed(), check: (what) => elector.check(what) } : OPEN_GATE;
    // Every write to the API server (node, node Lease, pod status, pod deletes, events, tokens) passes
    // the gate after its rate-limit wait, right before it is sent.
    const writeGate = elector ? (verb: string, resource: string) => this.gate.check(`${verb} ${resource}`) : undefined;
    this.clients = makeKubeClients(kc, { qps: o.qps, burst: o.burst, metrics: o.metrics, writeGate });
    // Events get their own budget so they never hold up pod work.
    const eventClients = makeKubeClients(kc, {
      qps: Math.max(1, o.qps / 2),
      burst: Math.max(1, Math.floor(o.burst / 2)),
      metrics: o.metrics,
      writeGate,
    });
    // ...and wait while pod work is queued (status writes first), at most 2 s.
    this.events = new EventRecorder(eventClients.core, o.nodeName, o.log.child({ component: 'events' }), 4, {
      busy: () => this.pods.queueDepth > 0,
    });
    // Every backend write (create, update, delete, restart, exec) is checked at the gate first.
    const provider = elector ? gatedProvider(o.provider, this.gate) : o.provider;
    const nodeLog = o.log.child({ component: 'node' });
    // The node's status and Lease get their own budget too (a kubelet's heartbeat client): the node's
    // Ready write at start must not queue behind the status writes of a burst of pods.
    const nodeClients = makeKubeClients(kc, { qps: o.qps, burst: o.burst, metrics: o.metrics, writeGate });
    this.node = new NodeController({
      api: kubeNodeApi(nodeClients, nodeLog),
      provider,
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
      kc,
      core: this.clients.core,
      log: podLog,
      onChange: (kind, namespace, name) => this.pods.referenceChanged(kind, namespace, name),
    });
    // Started once, by a follower's warm-up or by the pod controller, whichever comes first.
    const source = kubePodSource(this.clients, o.nodeName, podLog);
    let sourceStarted: Promise<void> | undefined;
    this.podSource = { ...source, start: () => (sourceStarted ??= source.start()) };
    this.pods = new PodController({
      provider,
      pods: this.podSource,
      writer: kubePodWriter(this.clients),
      events: elector ? gatedEvents(this.events, this.gate) : this.events,
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
          notReadyReason: () => this.notReadyReason(),
          beforeScrape: () => {
            for (const [phase, n] of Object.entries(this.pods.podsByPhase())) o.metrics.podsByPhase.set({ phase }, n);
            o.metrics.queueDepth.set(this.pods.queueDepth);
          },
        },
        o.metricsSecurity,
      );
    }
  }

  /** /readyz: a leader once its pods run; a follower once it could take over warm (so a PDB counts it). */
  private notReadyReason(): string | undefined {
    if (this.elector && !this.elector.isLeading && !this.started) return this.warm ? undefined : 'warming up';
    return !this.started ? 'starting' : !this.node.ready ? 'node not registered' : undefined;
  }

  async start(): Promise<void> {
    if (this.ops) {
      this.metricsPort = await this.ops.listen(this.o.metricsPort ?? 0, this.o.metricsAddress);
      this.o.log.info({ port: this.metricsPort }, 'operations endpoint listening');
    }
    if (this.elector) {
      this.elector.start();
      await this.warmUp();
      this.o.log.info(
        {
          lease: `${this.o.leaderElection?.namespace}/${this.o.leaderElection?.leaseName}`,
          identity: this.elector.identity,
        },
        'caches warm; waiting to lead',
      );
      if (!(await this.elector.whenLeading())) return; // stopped (or lost) meanwhile
      this.o.log.info({ node: this.o.nodeName, identity: this.elector.identity }, 'leading: taking over the node');
    }
    // The pod informer's LIST and WATCH run while the node registers, not after. The node is Ready
    // once the backend's pods are listed (the pod controller tells it); nothing is acted on before
    // both lists are in. (A follower's warm-up started the informer already.)
    void this.podSource.start().catch(() => undefined);
    await this.node.start();
    if (!this.node.ready) return; // stopped meanwhile
    this.o.log.info({ node: this.o.nodeName }, "node registered; Ready once the backend's pods are listed");
    await this.pods.start();
    if (this.pods.startupHealth) return; // stopped before the first list
    await this.node.refresh();
    this.started = true;
    this.o.log.info({ node: this.o.nodeName }, 'pod controller running');
  }

  /**
   * A follower's warm-up: the pod informer synced and one list of the provider's pods (which
   * starts its status watcher), so that a takeover reconciles from warm caches. Failures here
   * only cost warmth: the leader's start lists again and retries.
   */
  private async warmUp(): Promise<void> {
    try {
      await this.podSource.start();
      await this.o.provider.listPods();
    } catch (err) {
      this.o.log.warn({ err: errorMessage(err) }, 'warm-up incomplete; a takeover starts colder');
    }
    this.warm = true;
  }

  async stop(): Promise<void> {
    this.started = false;
    await this.pods.stop();
    await this.refs.stop();
    await this.node.stop();
    await this.events.flush(2000);
    this.events.close();
    // After the last write: a leader hands the lease back so a follower takes over at once.
    await this.elector?.stop(true);
    await this.o.provider.close?.();
    await this.ops?.close();
  }
}
