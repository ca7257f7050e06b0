/**
 * The ACI provider's settings, read from the original connector's environment
 * variables plus a few new ones (endpoints, CA file, limits).
 */
import { AciConfigError } from './errors.js';
import { ACI_WINDOWS, type PaceWindow } from './arm/pacer.js';

export interface RateLimitConfig {
  /** Token bucket size and refill per second; ARM's documented per-principal limits by default. */
  readBucket: number;
  readRefillPerSecond: number;
  writeBucket: number;
  writeRefillPerSecond: number;
  /** Deletes have their own bucket in ARM; the write limits apply when unset. */
  deleteBucket?: number;
  deleteRefillPerSecond?: number;
}

export interface AciConfig {
  clientId?: string;
  /** Never logged. */
  clientSecret?: string;
  tenantId?: string;
  subscriptionId: string;
  resourceGroup: string;
  region: string;
  /** ARM endpoint, e.g. https://management.azure.com (the emulator's URL in tests). */
  armEndpoint: string;
  /** Entra ID authority host, e.g. https://login.microsoftonline.com. */
  authorityHost?: string;
  /** PEM file with extra CA certificates trusted for ARM and the authority. */
  caFile?: string;
  limits: RateLimitConfig;
  /** How often the resource group is listed to notice changes (ms). */
  listIntervalMs: number;
  /** Share of the read budget (reads per second) spent on GETs for status. */
  statusReadsPerSecond: number;
  /** Requests for containers that set none. */
  defaultCpu: number;
  defaultMemoryInGB: number;
  /** Largest group the region allows. */
  maxCpuPerGroup: number;
  maxMemoryInGBPerGroup: number;
  /** Node capacity when the usages API gives none. */
  capacity: { cpu: string; memory: string; pods: string };
  defaultSubnetIds: string[];
  /** ACI's creation windows per subscription and region that creates are paced under (default ACI's: 100/5 min, 300/h). */
  creationWindows: PaceWindow[];
  /** The same for deletes. */
  deletionWindows: PaceWindow[];
  /** How often one group's Azure Monitor metrics are read at most (ms); default 30 s (Azure's grain is a minute). */
  metricsRefreshMs?: number;
}

export type Env = Record<string, string | undefined>;

export const ENV = {
  clientId: 'AZURE_CLIENT_ID',
  clientKey: 'AZURE_CLIENT_KEY',
  clientSecret: 'AZURE_CLIENT_SECRET',
  tenantId: 'AZURE_TENANT_ID',
  subscriptionId: 'AZURE_SUBSCRIPTION_ID',
  resourceGroup: 'ACI_RESOURCE_GROUP',
  region: 'ACI_REGION',
  armEndpoint: 'ACI_ARM_ENDPOINT',
  authorityHost: 'AZURE_AUTHORITY_HOST',
  caFile: 'ACI_CA_FILE',
  subnetIds: 'ACI_SUBNET_IDS',
  capacityCpu: 'ACI_CAPACITY_CPU',
  capacityMemory: 'ACI_CAPACITY_MEMORY',
  capacityPods: 'ACI_CAPACITY_PODS',
  metricsRefreshSeconds: 'ACI_METRICS_REFRESH_SECONDS',
  creationWindows: 'ACI_CREATION_WINDOWS',
  deletionWindows: 'ACI_DELETION_WINDOWS',
} as const;

/** `COUNT/SECONDS[,COUNT/SECONDS…]`, e.g. ACI's `100/300,300/3600`. */
function windows(setting: string, v: string | undefined): PaceWindow[] {
  if (v === undefined) return ACI_WINDOWS.map((w) => ({ ...w }));
  return v.split(',').map((part) => {
    const m = /^\s*(\d+)\s*\/\s*(\d+(?:\.\d+)?)\s*$/.exec(part);
    if (!m || Number(m[1]) <= 0 || Number(m[2]) <= 0)
      throw new AciConfigError(setting, `${setting} must be COUNT/SECONDS[,COUNT/SECONDS…], got '${v}'`);
    return { count: Number(m[1]), windowMs: Number(m[2]) * 1000 };
  });
}

function nonEmpty(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}

function url(setting: string, v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  try {
    const u = new URL(v);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('scheme');
    return v.replace(/\/+$/, '');
  } catch {
    throw new AciConfigError(setting, `${setting} must be an http(s) URL, got '${v}'`);
  }
}

function metricsRefresh(override: number | undefined, v: string | undefined): { metricsRefreshMs?: number } {
  if (override !== undefined) return { metricsRefreshMs: override };
  if (v === undefined) return {};
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0)
    throw new AciConfigError(
      ENV.metricsRefreshSeconds,
      `${ENV.metricsRefreshSeconds} must be a positive number of seconds, got '${v}'`,
    );
  return { metricsRefreshMs: n * 1000 };
}

/**
 * Reads the settings. Throws AciConfigError naming the first missing or malformed
 * one. `overrides` (from command-line flags) win over the environment.
 */
export function loadAciConfig(env: Env = process.env, overrides: Partial<AciConfig> = {}): AciConfig {
  const get = (k: string): string | undefined => nonEmpty(env[k]);
  const require = (k: string, v: string | undefined): string => {
    if (v === undefined) throw new AciConfigError(k, `missing required setting ${k}`);
    return v;
  };
  const clientSecret = overrides.clientSecret ?? get(ENV.clientKey) ?? get(ENV.clientSecret);
  const clientId = overrides.clientId ?? get(ENV.clientId);
  const tenantId = overrides.tenantId ?? get(ENV.tenantId);
  if (clientSecret !== undefined) {
    // A secret is only usable with the application (client) id and its tenant.
    require(ENV.clientId, clientId);
    require(ENV.tenantId, tenantId);
  }
  const cfg: AciConfig = {
    subscriptionId: overrides.subscriptionId ?? require(ENV.subscriptionId, get(ENV.subscriptionId)),
    resourceGroup: overrides.resourceGroup ?? require(ENV.resourceGroup, get(ENV.resourceGroup)),
    region: overrides.region ?? get(ENV.region) ?? 'westus',
    armEndpoint: overrides.armEndpoint ?? url(ENV.armEndpoint, get(ENV.armEndpoint)) ?? 'https://management.azure.com',
    limits: overrides.limits ?? {
      readBucket: 250,
      readRefillPerSecond: 25,
      writeBucket: 200,
      writeRefillPerSecond: 10,
    },
    creationWindows: overrides.creationWindows ?? windows(ENV.creationWindows, get(ENV.creationWindows)),
    deletionWindows: overrides.deletionWindows ?? windows(ENV.deletionWindows, get(ENV.deletionWindows)),
    listIntervalMs: overrides.listIntervalMs ?? 10_000,
    statusReadsPerSecond: overrides.statusReadsPerSecond ?? 10,
    ...metricsRefresh(overrides.metricsRefreshMs, get(ENV.metricsRefreshSeconds)),
    defaultCpu: overrides.defaultCpu ?? 1,
    defaultMemoryInGB: overrides.defaultMemoryInGB ?? 1.5,
    maxCpuPerGroup: overrides.maxCpuPerGroup ?? 4,
    maxMemoryInGBPerGroup: overrides.maxMemoryInGBPerGroup ?? 16,
    capacity: overrides.capacity ?? {
      cpu: get(ENV.capacityCpu) ?? '10000',
      memory: get(ENV.capacityMemory) ?? '4Ti',
      pods: get(ENV.capacityPods) ?? '5000',
    },
    defaultSubnetIds:
      overrides.defaultSubnetIds ??
      get(ENV.subnetIds)
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean) ??
      [],
  };
  if (clientId !== undefined) cfg.clientId = clientId;
  if (clientSecret !== undefined) cfg.clientSecret = clientSecret;
  if (tenantId !== undefined) cfg.tenantId = tenantId;
  const authorityHost = overrides.authorityHost ?? url(ENV.authorityHost, get(ENV.authorityHost));
  if (authorityHost !== undefined) cfg.authorityHost = authorityHost;
  const caFile = overrides.caFile ?? get(ENV.caFile);
  if (caFile !== undefined) cfg.caFile = caFile;
  if (!/^[-\w._()]{1,90}$/.test(cfg.resourceGroup) || cfg.resourceGroup.endsWith('.')) {
    throw new AciConfigError(
      ENV.resourceGroup,
      `${ENV.resourceGroup} '${cfg.resourceGroup}' is not a valid resource group name`,
    );
  }
  return cfg;
}
