/** The operations endpoints: /healthz (alive), /readyz (serving), /metrics (Prometheus). */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ConnectorMetrics } from '../common/metrics.js';

export interface OpsSources {
  metrics: ConnectorMetrics;
  /** undefined when ready, else why not. */
  notReadyReason(): string | undefined;
  /** Refreshes gauges computed on scrape. */
  beforeScrape?(): void;
}

export class OpsServer {
  private server: http.Server | undefined;

  constructor(private readonly src: OpsSources) {}

  async listen(port: number, host = '0.0.0.0'): Promise<number> {
    const server = http.createServer((req, res) => {
      void this.handle(req, res);
    });
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
    const path = (req.url ?? '/').split('?')[0];
    try {
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
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
    }
  }
}
