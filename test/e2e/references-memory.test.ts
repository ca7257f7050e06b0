/**
 * Memory grows with what the node's pods reference, not with the cluster: with
 * 5,000 Secrets of 10 KB in the cluster that no pod on the node uses, the
 * connector's RSS stays within 10 % of its RSS without them, both in the running
 * process (a cluster-wide informer would receive every one) and after a restart
 * (it would list every one). The figures are printed for the record.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as k8s from '@kubernetes/client-node';
import WebSocket from 'ws';
import { freshNamespace, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector, type ConnectorHandle } from './connector-process.js';

const PODS = 20;
const BULK = 5000;
const SECRET_BYTES = 10 * 1024;

function memory(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') * 1024, hwm: kb('VmHWM') * 1024 };
}

/**
 * Full garbage collections through the inspector, so that what is measured is
 * what the process holds, not how much start-up garbage a young heap still
 * carries: without it two samples of the same process drifted by ±10 %.
 */
async function collectGarbage(h: ConnectorHandle): Promise<number> {
  const url = await waitFor(
    'the inspector URL',
    () => /Debugger listening on (ws:\/\/127\.0\.0\.1:\d+\/\S+)/.exec(h.output())?.[1],
    {
      timeoutMs: 30_000,
      intervalMs: 100,
    },
  );
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let next = 0;
  const call = (method: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const id = ++next;
      const onMessage = (data: WebSocket.RawData) => {
        const text = Array.isArray(data)
          ? Buffer.concat(data).toString('utf8')
          : Buffer.from(data as Uint8Array).toString('utf8');
        const msg = JSON.parse(text) as { id?: number; result?: Record<string, unknown>; error?: unknown };
        if (msg.id !== id) return;
        ws.off('message', onMessage);
        if (msg.error) reject(new Error(`${method}: ${JSON.stringify(msg.error)}`));
        else resolve(msg.result ?? {});
      };
      ws.on('message', onMessage);
      ws.send(JSON.stringify({ id, method }));
    });
  try {
    await call('HeapProfiler.collectGarbage');
    await call('HeapProfiler.collectGarbage');
    return Number((await call('Runtime.getHeapUsage')).usedSize);
  } finally {
    ws.close();
  }
}

/** After full collections, the heap in use and the median of a few RSS samples. */
async function settled(h: ConnectorHandle): Promise<{ rss: number; heap: number; hwm: number }> {
  const pid = h.proc.pid ?? 0;
  await new Promise((r) => setTimeout(r, 3000));
  const heap = await collectGarbage(h);
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    await new Promise((r) => setTimeout(r, 300));
    samples.push(memory(pid).rss);
  }
  samples.sort((a, b) => a - b);
  return { rss: samples[2] ?? NaN, heap, hwm: memory(pid).hwm };
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(1)} MB`;

async function allRunning(api: k8s.CoreV1Api, ns: string): Promise<boolean> {
  const list = (await api.listNamespacedPod({ namespace: ns })).items;
  return list.length === PODS && list.every((p) => p.status?.phase === 'Running');
}

test(
  '5,000 Secrets of 10 KB that no pod on the node references do not grow the connector',
  { timeout: 900_000 },
  async (t) => {
    const api = core();
    const ns = await freshNamespace(t, 'refs-mem');
    const bulk = await freshNamespace(t, 'refs-bulk');
    // The inspector, on a loopback port of its own choosing, lets the test run full collections.
    const c = await startConnector(t, { nodeArgs: ['--inspect=127.0.0.1:0'] });

    for (let i = 0; i < PODS; i++) {
      await api.createNamespacedSecret({
        namespace: ns,
        body: { metadata: { name: `s-${i}` }, stringData: { v: 'x'.repeat(SECRET_BYTES) } },
      });
    }
    await Promise.all(
      Array.from({ length: PODS }, (_, i) =>
        api.createNamespacedPod({
          namespace: ns,
          body: boundPod(c.nodeName, `p-${i}`, {
            spec: {
              containers: [
                {
                  name: 'main',
                  image: 'busybox',
                  env: [{ name: 'V', valueFrom: { secretKeyRef: { name: `s-${i}`, key: 'v' } } }],
                },
              ],
            },
          }),
        }),
      ),
    );
    await waitFor(`${PODS} pods Running`, () => allRunning(api, ns), { timeoutMs: 120_000, intervalMs: 500 });
    const before = await settled(c);

    const value = 'y'.repeat(SECRET_BYTES);
    const started = Date.now();
    for (let i = 0; i < BULK; i += 50) {
      await Promise.all(
        Array.from({ length: Math.min(50, BULK - i) }, (_, j) =>
          api.createNamespacedSecret({
            namespace: bulk,
            body: { metadata: { name: `bulk-${i + j}` }, stringData: { v: value } },
          }),
        ),
      );
    }
    const createSeconds = (Date.now() - started) / 1000;
    const running = await settled(c);

    // A restart: a process that listed every Secret at start would now hold them all.
    c.proc.kill('SIGTERM');
    await c.exited;
    const again = await c.restart();
    await waitFor(`${PODS} pods Running after the restart`, () => allRunning(api, ns), {
      timeoutMs: 120_000,
      intervalMs: 500,
    });
    const restarted = await settled(again);

    console.log(
      `# RSS with ${PODS} pods: ${mb(before.rss)} without the ${BULK} Secrets; with them (created in ${createSeconds.toFixed(0)} s): ` +
        `${mb(running.rss)} in the running process, ${mb(restarted.rss)} after a restart (peak ${mb(restarted.hwm)}; peak before ${mb(before.hwm)}); ` +
        `heap in use after full collections ${mb(before.heap)}, ${mb(running.heap)}, ${mb(restarted.heap)}`,
    );
    // 5,000 Secrets of 10 KB are 50 MB of data: held, they would more than double a heap of this size.
    assert.ok(
      running.heap <= before.heap * 1.1,
      `running: heap ${mb(running.heap)} is within 10 % of ${mb(before.heap)}`,
    );
    assert.ok(
      restarted.heap <= before.heap * 1.1,
      `after a restart: heap ${mb(restarted.heap)} is within 10 % of ${mb(before.heap)}`,
    );
    assert.ok(running.rss <= before.rss * 1.1, `running: ${mb(running.rss)} is within 10 % of ${mb(before.rss)}`);
    assert.ok(
      restarted.rss <= before.rss * 1.1,
      `after a restart: ${mb(restarted.rss)} is within 10 % of ${mb(before.rss)}`,
    );
  },
);
