/**
 * The emulator's HTTPS front door: Entra endpoints, then ARM's pipeline (latency fault,
 * bearer check, api-version, routing, throttling, error faults, handler, lost-response
 * fault), then the exec/attach WebSockets. Handlers and the store know nothing of HTTP.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureTls } from './certs.js';
import { API_VERSION, type ArmContext, type ArmRequest, type ExecSessionTicket, type Quota } from './context.js';
import { ArmError } from './errors.js';
import { ExecSockets } from './exec-sockets.js';
import { Faults, type FaultOptions } from './faults.js';
import { EntraIdentity, type ClientCredential, type Principal } from './identity.js';
import { CreationWindow, defaultThrottleLimits, TokenBuckets, type Clock, type RequestCategory, type ThrottleLimits } from './limits.js';
import { matchRoute } from './router.js';
import type { ContainerGroupRuntime } from './runtime.js';
import { createSimulatedRuntime, type SimulatedRuntimeOptions } from './runtimes/simulated/index.js';
import { Store } from './store.js';

export const DEFAULT_TENANT_ID = '11111111-1111-4111-8111-111111111111';
export const DEFAULT_CLIENT_ID = '22222222-2222-4222-8222-222222222222';
export const DEFAULT_CLIENT_SECRET = 'aci-emulator-well-known-secret';
export const DEFAULT_SUBSCRIPTION_ID = '00000000-0000-0000-0000-0000000ac1e0';

export interface ThrottleOverrides {
  read?: Partial<ThrottleLimits['read']>;
  write?: Partial<ThrottleLimits['write']>;
  delete?: Partial<ThrottleLimits['delete']>;
  creations?: Partial<ThrottleLimits['creations']>;
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

export interface EmulatorStats {
  callsByOperation: Record<string, number>;
  responsesByStatus: Record<string, number>;
  throttled: number;
  faultsInjected: number;
  lostResponses: number;
  tokensIssued: number;
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
  stop(opts?: { keep?: boolean }): Promise<void>;
}

function mergeLimits(base: ThrottleLimits, o: ThrottleOverrides | undefined): ThrottleLimits {
  return {
    read: { ...base.read, ...o?.read },
    write: { ...base.write, ...o?.write },
    delete: { ...base.delete, ...o?.delete },
    creations: { ...base.creations, ...o?.creations },
  };
}

async function loadRuntime(options: EmulatorOptions, log: (msg: string) => void): Promise<ContainerGroupRuntime> {
  const r = options.runtime ?? 'simulated';
  if (typeof r !== 'string') return r;
  if (r === 'simulated') return createSimulatedRuntime(options.simulated);
  // Written separately; loaded by name so the ARM layer does not depend on it at build time.
  const specifier = './runtimes/podman/index.js';
  const mod = (await import(specifier)) as { createPodmanRuntime?: (opts: Record<string, unknown>) => ContainerGroupRuntime | Promise<ContainerGroupRuntime> };
  if (typeof mod.createPodmanRuntime !== 'function') throw new Error('runtimes/podman/index.js does not export createPodmanRuntime');
  // With an explicit state folder, podman's state lives inside it; otherwise the runtime picks its
  // own machine-wide folder (a temporary emulator folder would lose pulled images at every stop).
  const podmanOptions: Record<string, unknown> = {
    ...(options.stateDir ? { stateDir: path.join(options.stateDir, 'podman') } : {}),
    log,
    ...options.podman,
  };
  return await mod.createPodmanRuntime(podmanOptions);
}

const MAX_BODY = 4 * 1024 * 1024;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new ArmError(413, 'RequestEntityTooLarge', `The request body exceeds ${MAX_BODY} bytes.`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

const categoryOf = (method: string): RequestCategory => (method === 'GET' || method === 'HEAD' ? 'read' : method === 'DELETE' ? 'delete' : 'write');
const REMAINING_HEADER: Record<RequestCategory, string> = {
  read: 'x-ms-ratelimit-remaining-subscription-reads',
  write: 'x-ms-ratelimit-remaining-subscription-writes',
  delete: 'x-ms-ratelimit-remaining-subscription-deletes',
};

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
    { tenantId: options.tenantId ?? DEFAULT_TENANT_ID, clients, tokenLifetimeSeconds: options.tokenLifetimeSeconds ?? 3600 },
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
  let quota: Quota = { containerGroups: 5000, cores: 10000, ...options.quota };
  let throttling = options.throttling ?? true;
  const buckets = new TokenBuckets(() => limits, clock);
  const creations = new CreationWindow(() => limits, clock);
  const faults = new Faults(options.faults ?? {}, options.random);
  const store = new Store({ operationTtlMs: 15 * 60_000, maxFinishedOperations: 5000 });
  const tickets = new Map<string, ExecSessionTicket>();
  const ctx: ArmContext = {
    store,
    runtime,
    quota: () => quota,
    limits: () => limits,
    creations,
    throttling: () => throttling,
    pageSize: options.pageSize ?? 100,
    deleteSyncWaitMs: options.deleteSyncWaitMs ?? 2000,
    execTicketTtlMs: 60_000,
    execSplitsCommand: options.execSplitsCommand ?? false,
    tickets,
    log,
  };

  const newStats = (): Omit<EmulatorStats, 'groups' | 'operations'> => ({
    callsByOperation: {},
    responsesByStatus: {},
    throttled: 0,
    faultsInjected: 0,
    lostResponses: 0,
    tokensIssued: 0,
  });
  let stats = newStats();

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    stats.responsesByStatus[status] = (stats.responsesByStatus[status] ?? 0) + 1;
    const payload = body === undefined ? '' : JSON.stringify(body);
    res.writeHead(status, {
      ...headers,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json; charset=utf-8' }),
      'Content-Length': Buffer.byteLength(payload),
    });
    res.end(payload);
  };

  const originOf = (req: IncomingMessage): string => `https://${req.headers.host ?? `${host}:${port}`}`;

  async function handleIdentity(req: IncomingMessage, res: ServerResponse, url: URL): Promise<boolean> {
    const segments = url.pathname.split('/').filter(Boolean);
    const [tenant, ...rest] = segments;
    if (!tenant) return false;
    const tail = rest.join('/');
    const origin = originOf(req);
    if (req.method === 'GET' && (tail === 'v2.0/.well-known/openid-configuration' || tail === '.well-known/openid-configuration')) {
      if (!identity.knowsTenant(tenant)) {
        send(res, 400, { error: 'invalid_tenant', error_description: `AADSTS90002: Tenant '${tenant}' not found.` });
        return true;
      }
      send(res, 200, identity.openIdConfiguration(origin, tenant));
      return true;
    }
    if (req.method === 'GET' && tail === 'discovery/v2.0/keys') {
      send(res, 200, identity.jwks());
      return true;
    }
    if (req.method === 'POST' && tail === 'oauth2/v2.0/token') {
      const body = (await readBody(req)).toString('utf8');
      let basic: ClientCredential | undefined;
      const auth = req.headers.authorization;
      if (auth?.startsWith('Basic ')) {
        const [id, secret] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
        if (id !== undefined && secret !== undefined) basic = { clientId: decodeURIComponent(id), clientSecret: decodeURIComponent(secret) };
      }
      const result = await identity.token(origin, tenant, new URLSearchParams(body), basic);
      if (result.status === 200) stats.tokensIssued += 1;
      send(res, result.status, result.body, { 'Cache-Control': 'no-store', Pragma: 'no-cache' });
      return true;
    }
    return false;
  }

  async function handleArm(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const requestId = randomUUID();
    const baseHeaders: Record<string, string> = {
      'x-ms-request-id': requestId,
      'x-ms-correlation-request-id': (req.headers['x-ms-correlation-request-id'] as string | undefined) ?? requestId,
    };
    const clientRequestId = req.headers['x-ms-client-request-id'];
    if (typeof clientRequestId === 'string') baseHeaders['x-ms-client-request-id'] = clientRequestId;
    const method = (req.method ?? 'GET').toUpperCase();
    let operation = 'Unknown';
    // Grows with the rate-limit headers once the request passed throttling; errors carry them too.
    const headers: Record<string, string> = { ...baseHeaders };
    try {
      const latency = faults.latency();
      if (latency > 0) await new Promise((r) => setTimeout(r, latency));
      const rawBody = await readBody(req);
      const principal: Principal = await identity.verifyBearer(req.headers.authorization);
      const match = matchRoute(method, url.pathname);
      if (match.kind === 'none') {
        throw new ArmError(404, 'InvalidResourceType', `The resource type could not be found in the namespace 'Microsoft.ContainerInstance' for api version '${url.searchParams.get('api-version') ?? ''}'.`);
      }
      if (match.kind === 'method-not-allowed') {
        throw new ArmError(405, 'MethodNotAllowed', `The requested method '${method}' is not allowed for '${url.pathname}'.`);
      }
      operation = match.route.operation;
      stats.callsByOperation[operation] = (stats.callsByOperation[operation] ?? 0) + 1;
      const apiVersion = url.searchParams.get('api-version');
      if (!apiVersion) {
        throw new ArmError(400, 'MissingApiVersionParameter', "The api-version query parameter (?api-version=) is required for all requests.");
      }
      const wantedVersion = match.route.apiVersion ?? API_VERSION;
      if (apiVersion !== wantedVersion) {
        throw new ArmError(
          400,
          'NoRegisteredProviderFound',
          `No registered resource provider found for API version '${apiVersion}' and type 'containerGroups'. The supported api-versions are '${wantedVersion}'.`,
        );
      }
      const category = categoryOf(method);
      if (throttling) {
        const scope = match.params.subscriptionId ?? principal.tenantId;
        const taken = buckets.take(`${scope.toLowerCase()}\u0000${principal.objectId}`, category);
        if (!taken.ok) {
          throw new ArmError(
            429,
            'TooManyRequests',
            `Number of ${category} requests for subscription '${scope}' and principal '${principal.objectId}' exceeded the limit. Please try again after ${taken.retryAfterSeconds} seconds.`,
            { 'Retry-After': String(taken.retryAfterSeconds) },
          );
        }
        headers[REMAINING_HEADER[category]] = String(taken.remaining);
      }
      const fault = faults.decide(operation);
      if (fault.kind === 'error') {
        stats.faultsInjected += 1;
        if (fault.status === 500) throw new ArmError(500, 'InternalServerError', 'Encountered internal server error. (injected fault)');
        throw new ArmError(503, 'ServiceUnavailable', 'The service is temporarily unavailable. (injected fault)', { 'Retry-After': '1' });
      }
      let body: unknown;
      if (rawBody.length > 0) {
        try {
          body = JSON.parse(rawBody.toString('utf8'));
        } catch {
          throw new ArmError(400, 'InvalidRequestContent', 'The request content was invalid and could not be deserialized.');
        }
      }
      const armReq: ArmRequest = { method, operation, path: url.pathname, params: match.params, query: url.searchParams, body, origin: originOf(req), principal };
      const result = await match.route.handler(ctx, armReq);
      if (faults.loseResponse(operation) && result.status < 300) {
        stats.lostResponses += 1;
        req.socket.destroy();
        return;
      }
      send(res, result.status, result.body, { ...headers, ...result.headers });
    } catch (err) {
      if (err instanceof ArmError) {
        // Bucket throttling and the creation rate limit alike.
        if (err.status === 429) stats.throttled += 1;
        send(res, err.status, err.body(), { ...headers, ...err.headers });
        return;
      }
      const message = err instanceof Error ? err.message : String(err);
      log(`internal error in ${operation}: ${message}`);
      send(res, 500, { error: { code: 'InternalServerError', message: 'Encountered internal server error.' } }, baseHeaders);
    }
  }

  const server = https.createServer({ key: tls.keyPem, cert: tls.certPem }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://emulator');
    void (async () => {
      try {
        if (url.pathname.startsWith('/subscriptions/') || url.pathname.startsWith('/providers/')) {
          await handleArm(req, res, url);
          return;
        }
        if (await handleIdentity(req, res, url)) return;
        send(res, 404, { error: { code: 'NotFound', message: `No route for ${req.method ?? ''} ${url.pathname}.` } });
      } catch (err) {
        log(`request failed: ${err instanceof Error ? err.message : String(err)}`);
        if (!res.headersSent) send(res, 500, { error: { code: 'InternalServerError', message: 'Encountered internal server error.' } });
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
      stats = newStats();
    },
    setFaults: (f) => faults.set(f),
    setLimits: (l) => {
      limits = mergeLimits(limits, l);
    },
    resetThrottling: () => {
      buckets.reset();
      creations.reset();
    },
    setQuota: (q) => {
      quota = { ...quota, ...q };
    },
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
