/**
 * What the benchmark observes from the API server: a watch of one namespace's pods
 * (the moment each pod is first seen, seen Running, and gone), a watch of one Node's
 * Ready condition, and scrapes of the API server's own /metrics.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import * as k8s from '@kubernetes/client-node';
import type { ClusterInfo } from '../../devcluster/cluster.js';
import { parseRequestTotals, toCounts, type RequestCounts } from './prom.js';

export interface PodTimes {
  /** First seen through the watch (ms epoch). */
  seen: number;
  running?: number;
  gone?: number;
  deleting?: number;
}

/** A watch's end reason as text (an Error, a status object, or nothing). */
export function describe(err: unknown): string {
  if (err === undefined || err === null) return 'closed by the server';
  if (err instanceof Error) return err.message;
  return typeof err === 'string' ? err : JSON.stringify(err);
}

/** Tracks every pod of one namespace; timestamps are taken when the watch event arrives. */
export class PodWatch {
  readonly pods = new Map<string, PodTimes>();
  private req: { abort(): void } | undefined;
  private stopped = false;
  private listeners = new Set<() => void>();

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly namespace: string,
  ) {}

  /** Times the watch ended and was started again; a restart can bunch up the moments seen. */
  restarts = 0;
  private lastRV = '';

  async start(): Promise<void> {
    const watch = new k8s.Watch(this.kc);
    const onEvent = (type: string, pod: k8s.V1Pod) => {
      const now = Date.now();
      if (pod.metadata?.resourceVersion) this.lastRV = pod.metadata.resourceVersion;
      const name = pod.metadata?.name ?? '';
      let t = this.pods.get(name);
      if (!t) {
        t = { seen: now };
        this.pods.set(name, t);
      }
      if (type === 'DELETED') t.gone ??= now;
      else {
        if (pod.status?.phase === 'Running') t.running ??= now;
        if (pod.metadata?.deletionTimestamp) t.deleting ??= now;
      }
      for (const l of this.listeners) l();
    };
    const onDone = (err: unknown) => {
      if (this.stopped) return;
      // The server ends a watch on its timeout, or when this client falls behind. Resume from the last
      // resourceVersion seen, so events come in order and nothing is relisted; a 410 starts afresh.
      this.restarts++;
      if (err && /410|Gone|too old/i.test(describe(err))) this.lastRV = '';
      this.onRestart?.(this.restarts, err);
      setTimeout(() => void this.start().catch(() => undefined), 200);
    };
    this.req = await watch.watch(
      `/api/v1/namespaces/${this.namespace}/pods`,
      this.lastRV ? { resourceVersion: this.lastRV, allowWatchBookmarks: true } : { allowWatchBookmarks: true },
      onEvent,
      onDone,
    );
  }

  onRestart?: (n: number, err: unknown) => void;

  /**
   * Resolves once pred() holds, or rejects after timeoutMs. pred() walks every pod, so it runs at
   * most every 100 ms after an event, not on each one: at 5,000 pods a check per event would cost
   * the benchmark seconds of CPU that the agents need. Timestamps are taken per event regardless.
   */
  until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      let pending: NodeJS.Timeout | undefined;
      const check = () => {
        pending = undefined;
        if (!pred()) return;
        cleanup();
        resolve();
      };
      const soon = () => {
        pending ??= setTimeout(check, 100);
      };
      const timer = setInterval(check, 1000);
      const deadline = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearInterval(timer);
        clearTimeout(deadline);
        if (pending) clearTimeout(pending);
        this.listeners.delete(soon);
      };
      this.listeners.add(soon);
      check();
    });
  }

  stop(): void {
    this.stopped = true;
    this.req?.abort();
  }
}

/** The moment the named Node is first seen with Ready=True (ms epoch). */
export async function watchNodeReady(
  kc: k8s.KubeConfig,
  nodeName: string,
): Promise<{ ready: Promise<number>; stop(): void }> {
  let resolveReady: (t: number) => void = () => undefined;
  const ready = new Promise<number>((r) => (resolveReady = r));
  let done = false;
  let req: { abort(): void } | undefined;
  const start = async (): Promise<void> => {
    req = await new k8s.Watch(kc).watch(
      '/api/v1/nodes',
      { fieldSelector: `metadata.name=${nodeName}` },
      (_type: string, node: k8s.V1Node) => {
        if (node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True')) {
          done = true;
          resolveReady(Date.now());
        }
      },
      () => {
        if (!done) setTimeout(() => void start().catch(() => undefined), 200);
      },
    );
  };
  await start();
  return {
    ready,
    stop: () => {
      done = true;
      req?.abort();
    },
  };
}

/** Scrapes the API server's /metrics with the admin client certificate. */
export function scrapeRequests(cluster: Pick<ClusterInfo, 'server' | 'caCert' | 'runDir'>): Promise<RequestCounts> {
  const url = new URL('/metrics', cluster.server);
  const tls = {
    ca: readFileSync(cluster.caCert),
    cert: readFileSync(`${cluster.runDir}/pki/admin.crt`),
    key: readFileSync(`${cluster.runDir}/pki/admin.key`),
  };
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, headers: { accept: 'text/plain' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        if (res.statusCode !== 200) reject(new Error(`/metrics answered ${res.statusCode}: ${body.slice(0, 200)}`));
        else resolve(toCounts(parseRequestTotals(body)));
      });
    });
    req.on('error', reject);
    req.end();
  });
}
