/**
 * The operations endpoints: /healthz (alive), /readyz (serving), /metrics (Prometheus).
 * Plain HTTP by default. Secured (TLS options and a guard given), it serves
 * HTTPS and /metrics answers only callers the guard admits, as a kubelet's
 * /metrics (nodes/metrics); /healthz, /livez and /readyz stay open for probes,
 * as the control plane's components keep them (--authorization-always-allow-paths).
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { ConnectorMetrics } from '../common/metrics.js';
import { errorMessage } from '../common/errors.js';

export interface OpsSources {
  metrics: ConnectorMetrics;
  /** undefined when ready, else why not. */
  notReadyReason(): string | undefined;
  /** Refreshes gauges computed on scrape. */
  beforeScrape?(): void;
}

/** A refusal of a /metrics caller. */
export interface OpsRefusal {
  code: number;
  message: string;
}

export interface OpsSecurity {
  /** Options of the HTTPS listener (certificate, key, client CA, protocol and suites). */
  tls: https.ServerOptions;
  /** Decides a /metrics request: undefined lets it through. */
  guardMetrics(req: http.IncomingMessage): Promise<OpsRefusal | undefined>;
}

const OPEN_PATHS = new Set(['/healthz', '/livez', '/readyz']);

export class OpsServer {
  private server: http.Server | undefined;

  constructor(
    private readonly src: OpsSources,
    private readonly security?: OpsSecurity,
  ) {}

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      void this.handle(req, res);
    };
    const server = this.security ? https.createServer(this.security.tls, handler) : http.createServer(handler);
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return (server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (!s) return;
    await new Promise<void>((resolve) => s.close(() => resolve()));
    s.closeAllConnections();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    try {
      if (this.security && !OPEN_PATHS.has(path)) {
        // Every other path is guarded, so an unknown one tells an anonymous caller nothing either.
        const refusal = await this.security.guardMetrics(req);
        if (refusal) {
          res.writeHead(refusal.code, { 'content-type': 'text/plain' }).end(`${refusal.message}\n`);
          return;
        }
      }
      if (path === '/healthz' || path === '/livez') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const why = this.src.notReadyReason();
        if (why) res.writeHead(503, { 'content-type': 'text/plain' }).end(`not ready: ${why}\n`);
        else res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/metrics') {
        this.src.beforeScrape?.();
        const body = await this.src.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': this.src.metrics.registry.contentType }).end(body);
      } else {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      }
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(err)}\n`);
    }
  }
}
