/**
 * What the ACI provider says about its node: capacity from the subscription's quota and
 * use, fixed labels, and whether ARM is reachable with the connector's credential.
 */
import { TransientProviderError, type HealthStatus, type NodeInfoFromProvider } from '../../core/provider.js';
import type { Logger } from 'pino';
import { FailureStreak } from '../../common/failure-log.js';
import type { AciArm } from './arm/arm-client.js';
import type { AciConfig } from './config.js';
import { errorMessage } from '../../common/errors.js';

/** Local disk per container group (Microsoft Q&A: "around 50 GB", shared by its containers). */
const EPHEMERAL_GB_PER_GROUP = 50;

export class AciNodeHealth {
  private usageCache: { at: number; capacity: Record<string, string> } | undefined;
  private healthCache: { at: number; h: HealthStatus } | undefined;
  private readonly usageFailures: FailureStreak;
  private readonly probeFailures: FailureStreak;

  /** `ownGroups` counts the groups this node holds now (they count as free capacity: they are ours). */
  constructor(
    private readonly arm: AciArm,
    private readonly cfg: AciConfig,
    private readonly ownGroups: () => number,
    log: Logger,
  ) {
    // Not every cloud has the usages API: its absence is worth a line, not a warning.
    this.usageFailures = new FailureStreak(log, 'reading the subscription usages for node capacity', 'info');
    this.probeFailures = new FailureStreak(log, 'the ARM health check');
  }

  async nodeInfo(): Promise<NodeInfoFromProvider> {
    return {
      capacity: await this.capacity(),
      // Groups are placed without availability zones; AKS labels such nodes zone "0".
      labels: { 'topology.kubernetes.io/region': this.cfg.region.toLowerCase(), 'topology.kubernetes.io/zone': '0' },
      operatingSystem: 'linux',
      architecture: 'amd64',
    };
  }

  /** Quota minus use from the usages API, plus what our own pods hold; the configured values otherwise. */
  private async capacity(): Promise<Record<string, string>> {
    const now = Date.now();
    if (this.usageCache && now - this.usageCache.at < 60_000) return this.usageCache.capacity;
    const capacity: Record<string, string> = { ...this.cfg.capacity };
    try {
      const usages = await this.arm.listUsage();
      const find = (re: RegExp) => usages.find((u) => re.test(u.name?.value ?? ''));
      const groups = find(/^ContainerGroups$/i);
      const cores = find(/^StandardCores$/i);
      const ours = this.ownGroups();
      if (groups?.limit !== undefined && groups.currentValue !== undefined) {
        const free = Math.max(0, groups.limit - groups.currentValue) + ours;
        capacity['pods'] = String(Math.min(free, Number(this.cfg.capacity.pods) || free));
      }
      if (cores?.limit !== undefined && cores.currentValue !== undefined) {
        capacity['cpu'] = String(Math.max(0, cores.limit - cores.currentValue) + ours * this.cfg.defaultCpu);
      }
      this.usageFailures.succeeded();
    } catch (e) {
      // The usages API is optional (not every cloud has it): keep the configured capacity.
      this.usageFailures.failed(e, { kept: 'the configured capacity' });
    }
    // ACI gives each Linux group about 50 GB of local disk (images, writable layers, emptyDir).
    capacity['ephemeral-storage'] = `${(Number(capacity['pods']) || 0) * EPHEMERAL_GB_PER_GROUP}G`;
    this.usageCache = { at: now, capacity };
    return capacity;
  }

  async health(): Promise<HealthStatus> {
    const now = Date.now();
    if (this.healthCache && now - this.healthCache.at < 15_000) return this.healthCache.h;
    // Any recent success proves credential and endpoint; a probe would only queue behind
    // busy reads (e.g. a restart's GETs) and could time the node out for no reason.
    if (now - this.arm.caller.lastSuccessAt < 30_000) {
      const h = {
        ok: true,
        reason: 'AciReachable',
        message: `Azure Container Instances in ${this.cfg.region} is reachable`,
      };
      this.probeFailures.succeeded();
      this.healthCache = { at: now, h };
      return h;
    }
    let h: HealthStatus;
    try {
      await this.probe();
      h = { ok: true, reason: 'AciReachable', message: `Azure Container Instances in ${this.cfg.region} is reachable` };
      this.probeFailures.succeeded();
    } catch (e) {
      h = healthFromError(e);
      this.probeFailures.failed(e, { reason: h.reason });
    }
    this.healthCache = { at: now, h };
    return h;
  }

  /**
   * One cheap read that proves endpoint and credential. The usages are read at the subscription:
   * a service principal scoped to its resource group gets 403 there, which only means "quota
   * unknown" (capacity() keeps the configured values), so the resource group is asked instead.
   */
  private async probe(): Promise<void> {
    try {
      await this.arm.listUsage();
    } catch (e) {
      if (statusOf(e) !== 403) throw e;
      // A GET of a group that does not exist: 404 (undefined) proves read access to the resource group.
      await this.arm.getGroup(PROBE_GROUP);
    }
  }
}

/** A name no pod's group takes (ours are derived from the cluster, namespace and pod). */
const PROBE_GROUP = 'aci-connector-health-probe';

function statusOf(e: unknown): number | undefined {
  return (e as { statusCode?: number })?.statusCode;
}

export function healthFromError(e: unknown): HealthStatus {
  const name = (e as { name?: string })?.name ?? '';
  const status = (e as { statusCode?: number })?.statusCode;
  const msg = errorMessage(e);
  if (
    /AuthenticationError|AuthenticationRequiredError|CredentialUnavailableError|AggregateAuthenticationError/.test(
      name,
    ) ||
    status === 401 ||
    status === 403
  ) {
    // Keep only the stable part (the AADSTS code and text): trace ids and timestamps would
    // make every check look like a change and rewrite the node's status.
    const aad = /AADSTS\d+:[^.]*\./.exec(msg)?.[0];
    return {
      ok: false,
      reason: 'AzureCredentialInvalid',
      message: `Azure rejected the connector's credential${aad ? ` (${aad})` : status ? ` (HTTP ${status})` : ''}; check AZURE_CLIENT_ID, AZURE_CLIENT_KEY/AZURE_CLIENT_SECRET and AZURE_TENANT_ID, or the managed identity`,
    };
  }
  if (e instanceof TransientProviderError && e.reason === 'Throttled') {
    return { ok: true, reason: 'AciThrottled', message: 'ARM is throttling the connector; requests are paced' };
  }
  return {
    ok: false,
    reason: 'AciUnreachable',
    message: `Azure Container Instances is not reachable: ${firstLine(msg)}`,
  };
}

function firstLine(s: string): string {
  return (s.split('\n')[0] ?? '').slice(0, 300);
}
