/**
 * The emulator's HTTPS front door: it wires the parts and listens. Requests under
 * /subscriptions/ and /providers/ go through ARM's pipeline (pipeline.ts: latency fault,
 * bearer check, routing, api-version, throttling, error faults, handler, lost-response
 * fault), Entra's endpoints are identity-routes.ts, and upgrades are the exec/attach
 * WebSockets. Handlers and the store know nothing of HTTP.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureTls } from './certs.js';
import { defaultQuota, type ArmContext, type ExecSessionTicket, type Quota } from './context.js';
import { ExecSockets } from './exec-sockets.js';
import { Faults, type FaultOptions } from './faults.js';
import { jsonSender, newRequestStats, type RequestStats } from './http.js';
import { EntraIdentity, type ClientCredential } from './identity.js';
import { handleIdentity } from './identity-routes.js';
import {
  defaultThrottleLimits,
  mergeWindows,
  RateWindows,
  TokenBuckets,
  type Clock,
  type RateWindowsOverride,
  type ThrottleLimits,
} from './limits.js';
import { armPipeline } from './pipeline.js';
import type { ContainerGroupRuntime } from './runtime.js';
import { createSimulatedRuntime, type SimulatedRuntimeOptions } from './runtimes/simulated/index.js';
import { Store } from './store.js';
import { ScopedSettings, type ScopeSettings } from './scopes.js';
import { errorMessage } from '../common/errors.js';

export const DEFAULT_TENANT_ID = '11111111-1111-4111-8111-111111111111';
export const DEFAULT_CLIENT_ID = '22222222-2222-4222-8222-222222222222';
export const DEFAULT_CLIENT_SECRET = 'aci-emulator-well-known-secret';
export const DEFAULT_SUBSCRIPTION_ID = '00000000-0000-0000-0000-0000000ac1e0';

export interface ThrottleOverrides {
  read?: Partial<ThrottleLimits['read']>;
  write?: Partial<ThrottleLimits['write']>;
  delete?: Partial<ThrottleLimits['delete']>;
  /** ACI's creation windows (see RateWindowsOverride: one window given replaces both). */
  creations?: RateWindowsOverride;
  /** ACI's deletion windows, likewise. */
  deletions?: RateWindowsOverride;
}

export interface EmulatorOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Holds the CA and the token-signing key. Default: a temporary folder removed by stop(). */
  stateDir?: string;
  /** A runtime instance, or its name. Default 'simulated'. */
  runtime?: ContainerGroupRuntime | 'simulated' | 'podman';
  simulated?: SimulatedRuntimeOptions;
  /** Passed to createPodmanRuntime when `runtime` is 'podman'. */
  podman?: Record<string, unknown>;
  tenantId?: string;
  /** The accepted client credentials (the first is reported). */
  clients?: ClientCredential[];
  /** The subscription id reported to clients. Any subscription id is accepted. */
  subscriptionId?: string;
  /** Set false to switch ARM throttling (token buckets and creation rate) off. */
  throttling?: boolean;
  limits?: ThrottleOverrides;
  quota?: Partial<Quota>;
  /** Limits and quotas of their own for some subscriptions or regions (over `limits` and `quota`). */
  scopes?: ScopeSettings[];
  faults?: FaultOptions;
  /** List page size. Default 100. */
  pageSize?: number;
  /**
   * Extension: split an exec command string on whitespace (or read a JSON array of strings
   * as an exact argv). Off by default, as ACI runs the string as one executable without arguments.
   */
  execSplitsCommand?: boolean;
  /** DELETE answers 200 when the runtime finishes within this, else 202. Default 2000 ms. */
  deleteSyncWaitMs?: number;
  tokenLifetimeSeconds?: number;
  /** Throttling clock (tests make it deterministic). Default Date.now. */
  clock?: Clock;
  /** Random source for faults. Default Math.random. */
  random?: () => number;
  log?: (msg: string) => void;
  /**
   * Run the runtime's preflight before listening (default true): a machine that cannot
   * run a group fails here, with the fix named, instead of leaving groups waiting.
   */
  preflight?: boolean;
}

export interface EmulatorStats extends RequestStats {
  groups: number;
  operations: number;
}

export interface Emulator {
  endpoint: string;
  authorityHost: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  subscriptionId: string;
  caCertPath: string;
  caPem: string;
  stateDir: string;
  runtime: ContainerGroupRuntime;
  stats(): EmulatorStats;
  resetStats(): void;
  setFaults(faults: FaultOptions): void;
  setLimits(limits: ThrottleOverrides): void;
  /** Refills every bucket and clears the creation window. (stats().throttled counts every 429 sent.) */
  resetThrottling(): void;
  setQuota(quota: Partial<Quota>): void;
  /** Sets the limits and quota of subscriptions or regions (replacing what those scopes had). */
  setScopes(scopes: ScopeSettings[]): void;
  stop(opts?: { keep?: boolean }): Promise<void>;
}

function mergeLimits(base: ThrottleLimits, o: ThrottleOverrides | undefined): ThrottleLimits {
  return {
    read: { ...base.read, ...o?.read },
    write: { ...base.write, ...o?.write },
    delete: { ...base.delete, ...o?.delete },
    creations: mergeWindows(base.creations, o?.creations),
    deletions: mergeWindows(base.deletions, o?.deletions),
  };
}

async function loadRuntime(options: EmulatorOptions, log: (msg: string) => void): Promise<ContainerGroupRuntime> {
  const r = options.runtime ?? 'simulated';
  if (typeof r !== 'string') return r;
  if (r === 'simulated') return createSimulatedRuntime(options.simulated);
  // Written separately; loaded by name so the ARM layer does not depend on it at build time.
  const specifier = './runtimes/podman/index.js';
  const mod = (await import(specifier)) as {
    createPodmanRuntime?: (opts: Record<string, unknown>) => ContainerGroupRuntime | Promise<ContainerGroupRuntime>;
  };
  if (typeof mod.createPodmanRuntime !== 'function')
    throw new Error('runtimes/podman/index.js does not export createPodmanRuntime');
  // With an explicit state folder, podman's state lives inside it; otherwise the runtime picks its
  // own machine-wide folder (a temporary emulator folder would lose pulled images at every stop).
  const podmanOptions: Record<string, unknown> = {
    ...(options.stateDir ? { stateDir: path.join(options.stateDir, 'podman') } : {}),
    log,
    ...options.podman,
  };
  return await mod.createPodmanRuntime(podmanOptions);
}

export async function startEmulator(options: EmulatorOptions = {}): Promise<Emulator> {
  const host = options.host ?? '127.0.0.1';
  const ownStateDir = options.stateDir === undefined;
  const stateDir = options.stateDir ?? (await mkdtemp(path.join(os.tmpdir(), 'aci-emulator-')));
  const log = options.log ?? (() => undefined);
  const clock = options.clock ?? Date.now;
  const tls = await ensureTls(stateDir, [host]);
  const clients = options.clients ?? [{ clientId: DEFAULT_CLIENT_ID, clientSecret: DEFAULT_CLIENT_SECRET }];
  const firstClient = clients[0];
  if (!firstClient) throw new Error('at least one client credential is required');
  const identity = await EntraIdentity.create(
    {
      tenantId: options.tenantId ?? DEFAULT_TENANT_ID,
      clients,
      tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 3600,
    },
    stateDir,
  );
  const runtime = await loadRuntime(options, log);
  if (options.preflight !== false && runtime.preflight) {
    try {
      await runtime.preflight();
    } catch (e) {
      await runtime.close().catch(() => undefined);
      throw e;
    }
  }

  let limits = mergeLimits(defaultThrottleLimits(), options.limits);
  let quota: Quota = { ...defaultQuota(), ...options.quota };
  let throttling = options.throttling ?? true;
  const scoped = new ScopedSettings(options.scopes ?? [], () => ({ limits, quota }));
  // Bucket keys start with the subscription (pipeline.ts); window keys are subscription and region.
  const buckets = new TokenBuckets((key) => scoped.limits({ subscriptionId: key.split('\u0000')[0] ?? '' }), clock);
  const meterOf = (key: string) => {
    const [subscriptionId = '', region] = key.split('\u0000');
    return region === undefined ? { subscriptionId } : { subscriptionId, region };
  };
  const creations = new RateWindows((key) => scoped.limits(meterOf(key)).creations, clock);
  const deletions = new RateWindows((key) => scoped.limits(meterOf(key)).deletions, clock);
  const faults = new Faults(options.faults ?? {}, options.random);
  const store = new Store({ operationTtlMs: 15 * 60_000, maxFinishedOperations: 5000 });
  const tickets = new Map<string, ExecSessionTicket>();
  const ctx: ArmContext = {
    store,
    runtime,
    quota: (scope) => scoped.quota(scope),
    limits: (scope) => scoped.limits(scope),
    creations,
    deletions,
    windowThrottled: (kind) => {
      if (kind === 'creation') stats.creationsThrottled += 1;
      else stats.deletionsThrottled += 1;
    },
    throttling: () => throttling,
    pageSize: options.pageSize ?? 100,
    deleteSyncWaitMs: options.deleteSyncWaitMs ?? 2000,
    execTicketTtlMs: 60_000,
    execSplitsCommand: options.execSplitsCommand ?? false,
    tickets,
    log,
  };

  let stats = newRequestStats();
  const send = jsonSender(() => stats);
  const originOf = (req: IncomingMessage): string => `https://${req.headers.host ?? `${host}:${port}`}`;
  const handleArm = armPipeline({
    ctx,
    identity,
    faults,
    buckets,
    throttling: () => throttling,
    stats: () => stats,
    send,
    originOf,
    log,
  });
  const identityRoutes = { identity, send, stats: () => stats, originOf };

  const server = https.createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://emulator');
    void (async () => {
      try {
        if (url.pathname.startsWith('/subscriptions/') || url.pathname.startsWith('/providers/')) {
          await handleArm(req, res, url);
          return;
        }
        if (await handleIdentity(identityRoutes, req, res, url)) return;
        send(res, 404, { error: { code: 'NotFound', message: `No route for ${req.method ?? ''} ${url.pathname}.` } });
      } catch (err) {
        log(`request failed: ${errorMessage(err)}`);
        if (!res.headersSent)
          send(res, 500, { error: { code: 'InternalServerError', message: 'Encountered internal server error.' } });
      }
    })();
  });
  server.keepAliveTimeout = 30_000;
  const sockets = new ExecSockets(ctx);
  server.on('upgrade', (req, socket, head) => {
    if (!sockets.handleUpgrade(req, socket, head)) socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = host.includes(':') ? `[${host}]` : host;
  const endpoint = `https://${hostForUrl}:${port}`;
  let stopped = false;

  return {
    endpoint,
    authorityHost: endpoint,
    tenantId: identity.tenantId,
    clientId: firstClient.clientId,
    clientSecret: firstClient.clientSecret,
    subscriptionId: options.subscriptionId ?? DEFAULT_SUBSCRIPTION_ID,
    caCertPath: tls.caCertPath,
    caPem: tls.caPem,
    stateDir,
    runtime,
    stats: () => ({ ...structuredClone(stats), groups: store.groupCount(), operations: store.operationCount() }),
    resetStats: () => {
      stats = newRequestStats();
    },
    setFaults: (f) => faults.set(f),
    setLimits: (l) => {
      limits = mergeLimits(limits, l);
    },
    resetThrottling: () => {
      buckets.reset();
      creations.reset();
      deletions.reset();
    },
    setQuota: (q) => {
      quota = { ...quota, ...q };
    },
    setScopes: (s) => scoped.set(s),
    stop: async (opts) => {
      if (stopped) return;
      stopped = true;
      throttling = false;
      sockets.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await runtime.close(opts?.keep ? { keep: true } : {});
      if (ownStateDir) await rm(stateDir, { recursive: true, force: true });
    },
  };
}
