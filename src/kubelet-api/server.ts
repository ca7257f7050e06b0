/**
 * The kubelet API: the HTTPS endpoint a node advertises in
 * status.daemonEndpoints.kubeletEndpoint, which the API server calls for
 * `kubectl logs`, `exec`, `attach` and `port-forward`. Every request is authenticated (client
 * certificate or bearer token) and authorized (SubjectAccessReview on
 * nodes/<subresource>) before anything else, as by a kubelet (auth.ts); the
 * listener speaks only TLS 1.2/1.3 with AEAD ECDHE suites (tls.ts). Pods are
 * found in the core's cache and handed to the provider's streaming hooks.
 */
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import type { V1Pod } from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import type { UserInfo } from '../core/access-reviews.js';
import { PodRejectedError, TransientProviderError, type PodRef, type Provider } from '../core/provider.js';
import { AuthError, type KubeletAuth } from './auth.js';
import { dial, ForwardError, relay, type Forward } from './port-forward.js';
import { PORT_FORWARD_SPDY_PROTOCOLS, servePortForwardSpdy } from './port-forward-spdy.js';
import { servePortForwardWebSocket } from './port-forward-ws.js';
import { BadRequestError, parseRoute, type ContainerTarget, type PodTarget, type Route } from './routes.js';
import { machineInfo, runningPodList, type MachineInfo } from './node-views.js';
import { resourceMetricsText } from './resource-metrics.js';
import { StatsSource } from './stats-source.js';
import { summaryJson } from './stats-summary.js';
import type { RemoteSession } from './session.js';
import { acceptSpdy, negotiateProtocol, SPDY_PROTOCOLS } from './spdy-server.js';
import { failureStatus, statusForExit, type MetaStatus } from './status.js';
import { secureServerOptions, type KubeletTls } from './tls.js';
import { acceptWebSocket, WS_PROTOCOLS } from './ws-server.js';
import { errorMessage } from '../common/errors.js';

export type PodLookup = (namespace: string, name: string) => V1Pod | undefined;

export interface KubeletApiOptions {
  port: number;
  /** Default 0.0.0.0. */
  address?: string;
  tls: KubeletTls;
  /** Who may call: authentication and authorization of every request. */
  auth: KubeletAuth;
  provider: Provider;
  nodeName: string;
  /** The core's pod cache. */
  lookupPod: PodLookup;
  /** Every pod bound to the node, for GET /pods. */
  listPods?: () => V1Pod[];
  log: Logger;
}

/** An HTTP error with the status code the caller gets. */
class HttpError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly headers: Record<string, string | string[]> = {},
  ) {
    super(message);
  }
}

type Hook = 'getContainerLogs' | 'exec' | 'attach' | 'portForwardAddress';

const HOOK_NAMES: Record<Hook, string> = {
  getContainerLogs: 'container logs',
  exec: 'exec',
  attach: 'attach',
  portForwardAddress: 'port-forward',
};

/** /spec/ reads the node's capacity from the provider at most this often. */
const SPEC_CACHE_MS = 60_000;

export class KubeletApiServer {
  private readonly server: Server;
  private readonly sessions = new Set<RemoteSession>();
  /** Upgraded sockets: the HTTP server no longer tracks them. */
  private readonly upgraded = new Set<Duplex>();
  private readonly startedAt = new Date();
  private spec: { at: number; info: MachineInfo } | undefined;
  private readonly stats: StatsSource;
  port: number | undefined;

  constructor(private readonly o: KubeletApiOptions) {
    this.server = createServer(secureServerOptions(o.tls));
    this.stats = new StatsSource({
      provider: o.provider,
      nodeName: o.nodeName,
      nodeStartTime: this.startedAt,
      listPods: () => o.listPods?.() ?? [],
    });
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.onRequest(req, res).catch((err: unknown) => this.fail(res, err));
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      socket.on('error', (err: Error) => o.log.debug({ err: err.message }, 'kubelet API socket error'));
      this.upgraded.add(socket);
      socket.once('close', () => this.upgraded.delete(socket));
      this.onUpgrade(req, socket, head).catch((err: unknown) => this.failSocket(socket, err));
    });
    this.server.on('tlsClientError', (err: Error) =>
      o.log.debug({ err: err.message }, 'kubelet API TLS handshake failed'),
    );
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.o.port, this.o.address ?? '0.0.0.0', () => {
        this.server.off('error', reject);
        this.port = (this.server.address() as AddressInfo).port;
        resolve(this.port);
      });
    });
  }

  /** Stops accepting, ends open exec sessions and closes every connection. */
  async close(): Promise<void> {
    const closing = new Promise<void>((r) => this.server.close(() => r()));
    const ending = Promise.all(
      [...this.sessions].map((s) =>
        s.finish(failureStatus('the node agent is shutting down', 'ServiceUnavailable', 503)),
      ),
    );
    // Clients get a moment to read the status; then every connection goes.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([ending, new Promise<void>((r) => (timer = setTimeout(r, 2_000)))]);
    clearTimeout(timer);
    for (const socket of this.upgraded) socket.destroy();
    this.server.closeAllConnections();
    await closing;
  }

  // ---- plain requests --------------------------------------------------------

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    await this.admit(req);
    const route = this.route(req);
    switch (route.kind) {
      case 'healthz':
        return this.send(res, 200, 'ok');
      case 'pods':
        return this.sendJson(res, 200, {
          kind: 'PodList',
          apiVersion: 'v1',
          metadata: {},
          items: this.o.listPods?.() ?? [],
        });
      case 'runningPods':
        // What the backend runs, not what the API server asked for (the kubelet asks its runtime).
        return this.sendJson(res, 200, runningPodList(await this.callProvider(() => this.o.provider.listPods())));
      case 'spec':
        return this.sendJson(res, 200, await this.machineSpec());
      case 'statsSummary':
        return this.sendText(
          res,
          200,
          summaryJson(await this.callProvider(() => this.stats.summary())),
          'application/json',
        );
      case 'metricsResource':
        return this.sendText(res, 200, await this.resourceMetrics(), 'text/plain; version=0.0.4; charset=utf-8');
      case 'containerLogs':
        return this.logs(req, res, route);
      case 'exec':
      case 'attach':
      case 'portForward':
        throw new HttpError(400, `${route.kind} needs a connection upgrade (SPDY/3.1 or WebSocket)`);
    }
  }

  private async logs(
    req: IncomingMessage,
    res: ServerResponse,
    route: Extract<Route, { kind: 'containerLogs' }>,
  ): Promise<void> {
    const hook = this.hook('getContainerLogs');
    const ref = this.findPod(route.target);
    const source = await this.callProvider(() => hook(ref, route.target.container, route.opts));
    res.writeHead(200, { 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-cache' });
    // A follow stream ends only when the caller goes away.
    res.on('close', () => source.destroy());
    let left = route.opts.limitBytes ?? Infinity;
    try {
      for await (const chunk of source) {
        const buf = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
        const part = buf.length > left ? buf.subarray(0, left) : buf;
        left -= part.length;
        if (!res.write(part)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
        if (left <= 0 || res.destroyed) break; // leaving the loop destroys the source
      }
      res.end();
    } catch (err) {
      // The source failed mid-way; the status line is gone already, so cut the body short.
      this.o.log.debug({ err: errorMessage(err) }, 'log stream ended early');
      res.destroy();
    }
  }

  // ---- exec / attach -----------------------------------------------------------

  private async onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const user = await this.admit(req);
    const route = this.route(req);
    if (route.kind === 'portForward') return this.portForward(req, socket, head, route, user);
    if (route.kind !== 'exec' && route.kind !== 'attach')
      throw new HttpError(400, `${req.url ?? ''} does not take a connection upgrade`);
    const hook = this.hook(route.kind);
    const ref = this.findPod(route.target);
    const container = route.target.container;

    const upgrade = (req.headers.upgrade ?? '').toLowerCase();
    let session: RemoteSession;
    if (upgrade.includes('websocket')) {
      const offered = req.headers['sec-websocket-protocol'];
      if (!negotiateProtocol(offered, WS_PROTOCOLS)) {
        throw new HttpError(
          400,
          `no supported WebSocket sub-protocol offered (want one of ${WS_PROTOCOLS.join(', ')})`,
        );
      }
      session = await acceptWebSocket(req, socket, head, { flags: route.stream, log: this.o.log });
    } else if (upgrade.includes('spdy/3.1')) {
      const protocol = negotiateProtocol(req.headers['x-stream-protocol-version'], SPDY_PROTOCOLS);
      if (!protocol) {
        throw new HttpError(
          403,
          `unable to negotiate a stream protocol (server accepts ${SPDY_PROTOCOLS.join(', ')})`,
          {
            'X-Accepted-Stream-Protocol-Versions': [...SPDY_PROTOCOLS],
          },
        );
      }
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
          `X-Stream-Protocol-Version: ${protocol}\r\n\r\n`,
      );
      if (head.length > 0) socket.unshift(head);
      session = await acceptSpdy(socket, { flags: route.stream, protocol, log: this.o.log });
    } else {
      throw new HttpError(400, 'unsupported upgrade: want SPDY/3.1 or websocket');
    }

    this.sessions.add(session);
    const log = this.o.log.child({
      pod: `${ref.namespace}/${ref.name}`,
      container,
      kind: route.kind,
      protocol: session.protocol,
      user: user.username,
    });
    log.info('streaming session started');
    let status: MetaStatus;
    try {
      const result =
        route.kind === 'exec'
          ? await (hook as NonNullable<Provider['exec']>)(ref, container, route.command, session.streams)
          : await (hook as NonNullable<Provider['attach']>)(ref, container, session.streams);
      status = statusForExit(result.exitCode);
      log.info({ exitCode: result.exitCode }, 'streaming session ended');
    } catch (err) {
      status = failureStatus(`${route.kind} failed: ${errorMessage(err)}`);
      log.warn({ err: errorMessage(err) }, 'streaming session failed');
    }
    try {
      await session.finish(status);
    } finally {
      this.sessions.delete(session);
    }
  }

  // ---- port-forward ------------------------------------------------------------------

  private async portForward(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    route: Extract<Route, { kind: 'portForward' }>,
    user: UserInfo,
  ): Promise<void> {
    const address = this.hook('portForwardAddress');
    const { namespace, name, uid } = this.findPodOnly(route.target);
    const ref: PodRef = { namespace, name, uid };
    const podName = `${ref.namespace}/${ref.name}`;
    const log = this.o.log.child({ pod: podName, kind: 'portForward', user: user.username });
    // The pod's address is read per forwarded connection: it may appear (or change) while the session lasts.
    const forward: Forward = async (port, data) => {
      let ip: string | undefined;
      try {
        ip = await address(ref);
      } catch (err) {
        throw new ForwardError(`cannot read the pod's IP address from the provider: ${errorMessage(err)}`);
      }
      if (!ip) throw new ForwardError(`pod ${podName} has no IP address the node can reach (status.podIP is empty)`);
      const conn = await dial(ip, port);
      log.debug({ ip, port }, 'port-forward connection open');
      await relay(conn, data);
    };

    const upgrade = (req.headers.upgrade ?? '').toLowerCase();
    if (upgrade.includes('websocket')) {
      if (route.ports.length === 0) throw new HttpError(400, 'query parameter "port" is required');
      log.info({ ports: route.ports, protocol: 'websocket' }, 'port-forward session started');
      await servePortForwardWebSocket(req, socket, head, { ports: route.ports, podName, uid: ref.uid, forward, log });
    } else if (upgrade.includes('spdy/3.1')) {
      const protocol = negotiateProtocol(req.headers['x-stream-protocol-version'], PORT_FORWARD_SPDY_PROTOCOLS);
      if (!protocol) {
        throw new HttpError(
          403,
          `unable to negotiate a stream protocol (server accepts ${PORT_FORWARD_SPDY_PROTOCOLS.join(', ')})`,
          {
            'X-Accepted-Stream-Protocol-Versions': [...PORT_FORWARD_SPDY_PROTOCOLS],
          },
        );
      }
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n' +
          `X-Stream-Protocol-Version: ${protocol}\r\n\r\n`,
      );
      if (head.length > 0) socket.unshift(head);
      log.info({ protocol }, 'port-forward session started');
      await servePortForwardSpdy(socket, { podName, uid: ref.uid, forward, log });
    } else {
      throw new HttpError(400, 'unsupported upgrade: want SPDY/3.1 or websocket');
    }
    log.info('port-forward session ended');
  }

  // ---- node views ----------------------------------------------------------------------

  private async machineSpec(): Promise<MachineInfo> {
    if (this.spec && Date.now() - this.spec.at < SPEC_CACHE_MS) return this.spec.info;
    const node = await this.callProvider(() => this.o.provider.nodeInfo());
    const info = machineInfo(node, this.o.nodeName);
    this.spec = { at: Date.now(), info };
    return info;
  }

  /** As the kubelet's collector: a failed reading is scrape_error 1, still a 200. */
  private async resourceMetrics(): Promise<string> {
    try {
      return resourceMetricsText(await this.stats.summary());
    } catch (err) {
      this.o.log.warn({ err: (err as Error).message }, 'resource metrics: reading pod stats failed');
      return resourceMetricsText(undefined);
    }
  }

  // ---- helpers -------------------------------------------------------------------

  private route(req: IncomingMessage): Route {
    let route: Route | undefined;
    try {
      route = parseRoute(req.method ?? 'GET', req.url ?? '/');
    } catch (err) {
      if (err instanceof BadRequestError) throw new HttpError(400, err.message);
      throw err;
    }
    if (!route) throw new HttpError(404, `${req.method ?? ''} ${(req.url ?? '').split('?')[0] ?? ''}: not found`);
    return route;
  }

  /**
   * Authentication, then authorization, before the path is even routed (as the
   * kubelet's filter), so nobody learns which pods exist without the right.
   */
  private async admit(req: IncomingMessage): Promise<UserInfo> {
    try {
      return await this.o.auth.admit(req);
    } catch (err) {
      if (err instanceof AuthError)
        throw new HttpError(err.code, err.message, err.code === 405 ? { Allow: 'GET, HEAD, POST' } : {});
      throw err;
    }
  }

  private hook<H extends Hook>(name: H): NonNullable<Provider[H]> {
    const fn = this.o.provider[name];
    if (!fn) throw new HttpError(501, `the provider does not support ${HOOK_NAMES[name]}`);
    return fn.bind(this.o.provider) as NonNullable<Provider[H]>;
  }

  private findPodOnly(t: PodTarget): { pod: V1Pod } & PodRef {
    const pod = this.o.lookupPod(t.namespace, t.pod);
    const uid = pod?.metadata?.uid;
    if (!pod || !uid || (t.uid !== undefined && t.uid !== uid))
      throw new HttpError(404, `pod ${t.namespace}/${t.pod} is not on node ${this.o.nodeName}`);
    return { pod, namespace: t.namespace, name: t.pod, uid };
  }

  private findPod(t: ContainerTarget): PodRef {
    const { pod, uid } = this.findPodOnly(t);
    const spec = pod.spec;
    const names = [
      ...(spec?.containers ?? []),
      ...(spec?.initContainers ?? []),
      ...(spec?.ephemeralContainers ?? []),
    ].map((c) => c.name);
    if (!names.includes(t.container))
      throw new HttpError(404, `container ${JSON.stringify(t.container)} is not in pod ${t.namespace}/${t.pod}`);
    return { namespace: t.namespace, name: t.pod, uid };
  }

  private async callProvider<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof TransientProviderError) {
        const headers: Record<string, string> = err.retryAfterMs
          ? { 'Retry-After': String(Math.ceil(err.retryAfterMs / 1000)) }
          : {};
        throw new HttpError(503, err.message, headers);
      }
      // The backend can never do this (e.g. ACI keeps no previous logs): the request is at fault.
      if (err instanceof PodRejectedError) throw new HttpError(400, err.message);
      throw new HttpError(500, errorMessage(err));
    }
  }

  private send(res: ServerResponse, code: number, text: string, headers: Record<string, string | string[]> = {}): void {
    res.writeHead(code, { 'Content-Type': 'text/plain; charset=utf-8', ...headers });
    res.end(text.endsWith('\n') ? text : `${text}\n`);
  }

  private sendText(res: ServerResponse, code: number, body: string, contentType: string): void {
    res.writeHead(code, { 'Content-Type': contentType });
    res.end(body);
  }

  private sendJson(res: ServerResponse, code: number, body: unknown): void {
    res.writeHead(code, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private fail(res: ServerResponse, err: unknown): void {
    const e = err instanceof HttpError ? err : new HttpError(500, errorMessage(err));
    if (e.code >= 500) this.o.log.warn({ err: e.message }, 'kubelet API request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.send(res, e.code, e.message, e.headers);
  }

  private failSocket(socket: Duplex, err: unknown): void {
    const e = err instanceof HttpError ? err : new HttpError(500, errorMessage(err));
    if (e.code >= 500) this.o.log.warn({ err: e.message }, 'kubelet API upgrade failed');
    if (socket.destroyed || !socket.writable) return;
    const body = `${e.message}\n`;
    const extra = Object.entries(e.headers)
      .flatMap(([k, v]) => (Array.isArray(v) ? v : [v]).map((x) => `${k}: ${x}\r\n`))
      .join('');
    socket.end(
      `HTTP/1.1 ${e.code} ${STATUS_CODES[e.code] ?? 'Error'}\r\nContent-Type: text/plain; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`,
    );
  }
}

export async function startKubeletApi(o: KubeletApiOptions): Promise<KubeletApiServer> {
  const server = new KubeletApiServer(o);
  await server.listen();
  return server;
}
