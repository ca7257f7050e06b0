/** What every ARM handler gets: the store, the runtime, limits and settings. No HTTP here. */
import type { ContainerGroupRuntime } from './runtime.js';
import type { RateWindows, ThrottleLimits } from './limits.js';
import type { Store } from './store.js';
import type { Principal } from './identity.js';
import type { MeterScope } from './scopes.js';

export const API_VERSION = '2023-05-01';
export const PROVIDER = 'Microsoft.ContainerInstance';

export interface Quota {
  /** Container groups per subscription and region. */
  containerGroups: number;
  /** Cores (sum of container cpu requests) per subscription and region. */
  cores: number;
}

/** ACI's default regional quota (Microsoft's quotas page): 100 standard container groups and 100 standard cores. */
export const defaultQuota = (): Quota => ({ containerGroups: 100, cores: 100 });

export interface ExecSessionTicket {
  id: string;
  password: string;
  kind: 'exec' | 'attach';
  groupKey: string;
  container: string;
  command: string[];
  terminal: { cols: number; rows: number };
  expiresAt: number;
}

export interface ArmContext {
  store: Store;
  runtime: ContainerGroupRuntime;
  /** The quota and limits of a subscription and region (scopes.ts); the emulator-wide ones without a scope. */
  quota: (scope?: MeterScope) => Quota;
  limits: (scope?: MeterScope) => ThrottleLimits;
  /** ACI's creation windows, per subscription and region. */
  creations: RateWindows;
  /** ACI's deletion windows, per subscription and region. */
  deletions: RateWindows;
  /** Counts a 429 of a creation or deletion window (stats). */
  windowThrottled: (kind: 'creation' | 'deletion') => void;
  /** Creation and deletion windows on/off (ARM throttling as a whole can be switched off too). */
  throttling: () => boolean;
  pageSize: number;
  /** How long DELETE waits for the runtime before answering 202 instead of 200. */
  deleteSyncWaitMs: number;
  /** How long before an unused exec/attach password expires. */
  execTicketTtlMs: number;
  /** Exec command strings are split into an argv (an extension; ACI runs the string as one executable). */
  execSplitsCommand: boolean;
  tickets: Map<string, ExecSessionTicket>;
  log: (msg: string) => void;
}

export interface ArmRequest {
  method: string;
  operation: string;
  /** The request's path, as sent. */
  path: string;
  params: Record<string, string>;
  query: URLSearchParams;
  body: unknown;
  /** https://host:port as the client addressed us; used for links. */
  origin: string;
  principal: Principal;
}

export interface ArmResponse {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}
