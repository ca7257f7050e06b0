/**
 * Registers the virtual node and keeps it alive: a Lease renewed every 10 s,
 * conditions written when they change and at least once a minute, Ready driven
 * by the provider's health. Recreates the Node when someone deletes it.
 * Never deletes the Node itself (stopping must not disturb the pods on it).
 */
import type { V1Lease, V1Node, V1NodeCondition, V1NodeStatus, V1Taint } from '@kubernetes/client-node';
import { MicroTime } from './kube/apis.js';
import type { Logger } from '../common/logger.js';
import { backoffDelay, sleep, type BackoffPolicy } from '../common/backoff.js';
import { errorMessage } from '../common/errors.js';
import { mergePatchOptions, strategicMergePatchOptions } from './events.js';
import { managedInformer } from './informer.js';
import type { KubeClients } from './kube-client.js';
import type { HealthStatus, NodeInfoFromProvider, Provider } from './provider.js';

export const LEASE_NAMESPACE = 'kube-node-lease';

/**
 * The node controller's calls to the API server, injected (kubeNodeApi below is the real one;
 * unit tests use an in-memory one). Errors carry the HTTP status in `code`, as client-node's do.
 */
export interface NodeApi {
  /** The API server's gitVersion, e.g. v1.36.3. */
  serverVersion(): Promise<string>;
  readNode(name: string): Promise<V1Node>;
  createNode(node: V1Node): Promise<void>;
  patchNodeLabels(name: string, labels: Record<string, string>): Promise<void>;
  patchNodeStatus(name: string, status: V1NodeStatus): Promise<void>;
  readLease(name: string): Promise<V1Lease>;
  replaceLease(name: string, lease: V1Lease): Promise<V1Lease>;
  createLease(lease: V1Lease): Promise<V1Lease>;
  /** Watches the one Node: resolves once the first list landed. */
  watchNode(name: string, on: { update(n: V1Node): void; delete(n: V1Node): void }): Promise<{ stop(): Promise<void> }>;
}

export function kubeNodeApi(clients: KubeClients, log: Logger): NodeApi {
  const { core, coordination, kc, version } = clients;
  return {
    serverVersion: async () => (await version.getCode()).gitVersion,
    readNode: (name) => core.readNode({ name }),
    createNode: async (body) => void (await core.createNode({ body })),
    patchNodeLabels: async (name, labels) =>
      void (await core.patchNode({ name, body: { metadata: { labels } } }, mergePatchOptions())),
    patchNodeStatus: async (name, status) =>
      void (await core.patchNodeStatus({ name, body: { status } }, strategicMergePatchOptions())),
    readLease: (name) => coordination.readNamespacedLease({ name, namespace: LEASE_NAMESPACE }),
    replaceLease: (name, body) => coordination.replaceNamespacedLease({ name, namespace: LEASE_NAMESPACE, body }),
    createLease: (body) => coordination.createNamespacedLease({ namespace: LEASE_NAMESPACE, body }),
    async watchNode(name, on) {
      const fieldSelector = `metadata.name=${name}`;
      const informer = managedInformer<V1Node>(kc, '/api/v1/nodes', () => core.listNode({ fieldSelector }), {
        fieldSelector,
        log,
        what: 'node',
      });
      informer.cache.on('update', (n) => on.update(n));
      informer.cache.on('delete', (n) => on.delete(n));
      await informer.start();
      return { stop: () => informer.stop() };
    },
  };
}

export interface NodeControllerOptions {
  api: NodeApi;
  provider: Provider;
  nodeName: string;
  nodeIP: string;
  taints: V1Taint[];
  kubeletPort: number;
  /** Connector version, for nodeInfo.kubeletVersion. */
  version: string;
  log: Logger;
  leaseDurationSeconds?: number;
  leaseRenewMs?: number;
  /** How often health is checked; conditions are written when they change. */
  statusCheckMs?: number;
  /** Conditions are re-written at least this often. */
  statusRefreshMs?: number;
  /**
   * Why the node may not be Ready yet although the provider is healthy (the pods are not
   * reconciled with the backend yet); undefined: nothing holds it back.
   */
  startupGate?: () => HealthStatus | undefined;
  /** Retries of the first registration and status write (default 1 s doubling to 30 s). */
  registerBackoff?: BackoffPolicy;
}

const REGISTER_BACKOFF: BackoffPolicy = { baseMs: 1_000, maxMs: 30_000 };

/** What a node says before its first health check: a kubelet is not Ready until it has synced. */
const STARTING: HealthStatus = { ok: false, reason: 'KubeletNotReady', message: 'aci-connector is starting' };

function isNotFound(err: unknown): boolean {
  return (err as { code?: number } | undefined)?.code === 404;
}
function isConflict(err: unknown): boolean {
  return (err as { code?: number } | undefined)?.code === 409;
}

export class NodeController {
  private watch: { stop(): Promise<void> } | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  private statusTimer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly stopping = new AbortController();
  private nodeInfo: NodeInfoFromProvider | undefined;
  private kubeletVersion = 'v0.0.0';
  private lastHealth: HealthStatus | undefined;
  private lastStatusWrite = 0;
  private lastTransition = new Date();
  private registering: Promise<void> | undefined;
  private lease: V1Lease | undefined;
  /** True once the node is registered and its first status written. */
  ready = false;

  constructor(private readonly o: NodeControllerOptions) {}

  private get leaseDuration(): number {
    return this.o.leaseDurationSeconds ?? 40;
  }

  async start(): Promise<void> {
    this.kubeletVersion = await this.serverKubeletVersion();
    this.nodeInfo = await this.o.provider.nodeInfo();
    // Registered with its real condition (a bad credential shows at once, not after a "starting").
    this.lastHealth = await this.checkHealth();
    // A failed first write (API server restarting, a webhook timing out) is retried, as a
    // kubelet retries its registration: the process must not end over it.
    for (let failures = 0; ;) {
      try {
        await this.register();
        await this.writeStatus(true);
        await this.renewLease();
        break;
      } catch (err) {
        if (this.stopped) return;
        const retryInMs = backoffDelay(this.o.registerBackoff ?? REGISTER_BACKOFF, ++failures);
        this.o.log.warn({ err: errorMessage(err), failures, retryInMs }, 'node registration failed; will retry');
        await sleep(retryInMs, this.stopping.signal);
        if (this.stopped) return;
      }
    }
    this.ready = true;

    this.watch = await this.o.api.watchNode(this.o.nodeName, {
      delete: (n) => {
        if (this.stopped || n.metadata?.name !== this.o.nodeName) return;
        this.o.log.warn({ node: this.o.nodeName }, 'node deleted from outside; registering it again');
        void this.reregister();
      },
      update: (n) => {
        // Someone (the node lifecycle controller) overwrote Ready: put ours back now.
        if (this.stopped || !this.lastHealth) return;
        const ready = n.status?.conditions?.find((c) => c.type === 'Ready');
        const want = this.lastHealth.ok ? 'True' : 'False';
        if (ready && ready.status !== want)
          void this.writeStatus(true).catch((err: unknown) => this.warn(err, 'node status'));
      },
    });

    this.leaseTimer = setInterval(() => {
      void this.renewLease().catch((err: unknown) => this.warn(err, 'lease renewal'));
    }, this.o.leaseRenewMs ?? 10_000);
    this.statusTimer = setInterval(() => {
      void this.writeStatus(false).catch((err: unknown) => this.warn(err, 'node status'));
    }, this.o.statusCheckMs ?? 5_000);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    if (this.leaseTimer) clearInterval(this.leaseTimer);
    if (this.statusTimer) clearInterval(this.statusTimer);
    await this.watch?.stop();
  }

  /** The provider's node facts read at start (capacity, allocatable, labels), once started. */
  get info(): NodeInfoFromProvider | undefined {
    return this.nodeInfo;
  }

  /** The node's current health, as last reported by the provider. */
  get health(): HealthStatus | undefined {
    return this.lastHealth;
  }

  private warn(err: unknown, what: string): void {
    if (this.stopped) return;
    this.o.log.warn({ err: err instanceof Error ? err.message : String(err) }, `${what} failed; will retry`);
  }

  /** Checks health now and writes the status if it changed (the core's start gate opened, say). */
  async refresh(): Promise<void> {
    if (this.ready) await this.writeStatus(false).catch((err: unknown) => this.warn(err, 'node status'));
  }

  private async serverKubeletVersion(): Promise<string> {
    const version = await this.o.api.serverVersion();
    const m = /^v?(\d+)\.(\d+)\.(\d+)/.exec(version);
    const base = m ? `v${m[1]}.${m[2]}.${m[3]}` : 'v0.0.0';
    return `${base}-aci-connector-${this.o.version}`;
  }

  private async reregister(): Promise<void> {
    if (this.registering) return this.registering;
    this.registering = (async () => {
      for (let attempt = 0; !this.stopped; attempt++) {
        try {
          await this.register();
          await this.writeStatus(true);
          await this.renewLease();
          return;
        } catch (err) {
          this.warn(err, 'node registration');
          await new Promise((r) => setTimeout(r, Math.min(10_000, 500 * 2 ** attempt)));
        }
      }
    })().finally(() => {
      this.registering = undefined;
    });
    return this.registering;
  }

  labels(): Record<string, string> {
    const info = this.nodeInfo;
    return {
      ...(info?.labels ?? {}),
      type: 'virtual-kubelet',
      // No kubernetes.io/role (or node-role.kubernetes.io/…): NodeRestriction forbids a node to set
      // its own role labels, as it forbids a kubelet; an administrator can label the node.
      'kubernetes.io/hostname': this.o.nodeName,
      'kubernetes.io/os': info?.operatingSystem ?? 'linux',
      'kubernetes.io/arch': info?.architecture ?? 'amd64',
      'beta.kubernetes.io/os': info?.operatingSystem ?? 'linux',
      'beta.kubernetes.io/arch': info?.architecture ?? 'amd64',
      'node.kubernetes.io/exclude-from-external-load-balancers': 'true',
    };
  }

  private async register(): Promise<void> {
    const api = this.o.api;
    let existing: V1Node | undefined;
    try {
      existing = await api.readNode(this.o.nodeName);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (!existing) {
      try {
        await api.createNode({
          apiVersion: 'v1',
          kind: 'Node',
          metadata: { name: this.o.nodeName, labels: this.labels() },
          spec: { taints: this.o.taints },
          status: this.statusBody(this.lastHealth ?? STARTING),
        });
        this.o.log.info({ node: this.o.nodeName }, 'node registered');
        return;
      } catch (err) {
        if (!isConflict(err)) throw err;
        existing = await api.readNode(this.o.nodeName);
      }
    }
    // Adopt the existing node: our labels added, everyone else's kept. Taints are set only when
    // the node is registered: NodeRestriction forbids a node to change its own taints (so that it
    // cannot steer workloads to itself), as a kubelet's --register-with-taints does.
    const missing = this.o.taints.filter(
      (t) => !(existing.spec?.taints ?? []).some((x) => x.key === t.key && x.effect === t.effect),
    );
    if (missing.length > 0) {
      this.o.log.warn(
        { node: this.o.nodeName, missing: missing.map((t) => `${t.key}:${t.effect}`) },
        'the existing node lacks taints this connector registers with; a node may not change its own taints, so an administrator must add them (or delete the node to register it again)',
      );
    }
    await api.patchNodeLabels(this.o.nodeName, this.labels());
    this.o.log.info({ node: this.o.nodeName }, 'node exists; adopted');
  }

  private conditions(h: HealthStatus, now: Date): V1NodeCondition[] {
    const ok = (type: string, reason: string, message: string): V1NodeCondition => ({
      type,
      status: 'False',
      reason,
      message,
      lastHeartbeatTime: now,
      lastTransitionTime: this.lastTransition,
    });
    return [
      {
        type: 'Ready',
        status: h.ok ? 'True' : 'False',
        reason: h.ok ? 'KubeletReady' : h.reason,
        message: h.ok ? `aci-connector is posting ready status: ${h.message}` : h.message,
        lastHeartbeatTime: now,
        lastTransitionTime: this.lastTransition,
      },
      ok('MemoryPressure', 'KubeletHasSufficientMemory', 'the backend has no memory pressure'),
      ok('DiskPressure', 'KubeletHasNoDiskPressure', 'the backend has no disk pressure'),
      ok('PIDPressure', 'KubeletHasSufficientPID', 'the backend has no PID pressure'),
    ];
  }

  private statusBody(h: HealthStatus): V1NodeStatus {
    const info = this.nodeInfo;
    const now = new Date();
    return {
      capacity: info?.capacity ?? {},
      allocatable: info?.allocatable ?? info?.capacity ?? {},
      conditions: this.conditions(h, now),
      addresses: [
        { type: 'InternalIP', address: this.o.nodeIP },
        { type: 'Hostname', address: this.o.nodeName },
      ],
      daemonEndpoints: { kubeletEndpoint: { Port: this.o.kubeletPort } },
      nodeInfo: {
        kubeletVersion: this.kubeletVersion,
        kubeProxyVersion: '',
        operatingSystem: info?.operatingSystem ?? 'linux',
        architecture: info?.architecture ?? 'amd64',
        containerRuntimeVersion: `aci-connector://${this.o.version}`,
        kernelVersion: '',
        osImage: '',
        machineID: this.o.nodeName,
        systemUUID: this.o.nodeName,
        bootID: '',
      },
    };
  }

  /** The provider's health, held back by the start gate. */
  private async checkHealth(): Promise<HealthStatus> {
    let h: HealthStatus;
    try {
      h = await this.o.provider.health();
    } catch (err) {
      h = {
        ok: false,
        reason: 'ProviderHealthCheckFailed',
        message: `the provider's health check failed: ${(err as Error).message}`,
      };
    }
    // The provider's own reason comes first (it names the backend's problem); a healthy provider
    // still leaves the node NotReady until the core has reconciled its pods.
    const gate = h.ok ? this.o.startupGate?.() : undefined;
    return gate ?? h;
  }

  /** Checks health; writes the status when it changed, when forced, or when a minute passed. */
  private async writeStatus(force: boolean): Promise<void> {
    if (this.stopped) return;
    const h = await this.checkHealth();
    const changed =
      !this.lastHealth ||
      this.lastHealth.ok !== h.ok ||
      this.lastHealth.reason !== h.reason ||
      this.lastHealth.message !== h.message;
    if (this.lastHealth && this.lastHealth.ok !== h.ok) this.lastTransition = new Date();
    const due = Date.now() - this.lastStatusWrite >= (this.o.statusRefreshMs ?? 60_000);
    if (!force && !changed && !due) return;
    if (changed && this.lastHealth) {
      this.o.log.info({ ok: h.ok, reason: h.reason, message: h.message }, 'provider health changed');
    }
    this.lastHealth = h;
    await this.o.api.patchNodeStatus(this.o.nodeName, this.statusBody(h));
    this.lastStatusWrite = Date.now();
  }

  private async renewLease(retried = false): Promise<void> {
    if (this.stopped) return;
    const api = this.o.api;
    const name = this.o.nodeName;
    let node: V1Node | undefined;
    const spec = {
      holderIdentity: name,
      leaseDurationSeconds: this.leaseDuration,
      renewTime: new MicroTime(),
    };
    // Renew with the Lease from the last renewal (one PUT); read it again only on a conflict or a miss.
    try {
      let lease = this.lease;
      if (!lease) lease = await api.readLease(name);
      this.lease = await api.replaceLease(name, { ...lease, spec: { ...lease.spec, ...spec } });
      return;
    } catch (err) {
      this.lease = undefined;
      if (isConflict(err) && !retried) return this.renewLease(true);
      if (!isNotFound(err)) throw err;
    }
    // The lease is owned by the node, so it goes when the node goes (as a kubelet's does).
    try {
      node = await api.readNode(name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.lease = await api.createLease({
      metadata: {
        name,
        namespace: LEASE_NAMESPACE,
        ownerReferences: node?.metadata?.uid
          ? [{ apiVersion: 'v1', kind: 'Node', name, uid: node.metadata.uid }]
          : undefined,
      },
      spec,
    });
  }
}
