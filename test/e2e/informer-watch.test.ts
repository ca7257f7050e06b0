/**
 * The connector's hand-written reflector (src/core/kube/reflector.ts) against the real API server:
 * a watch whose connection is cut is resumed from the last resourceVersion (what changed meanwhile
 * arrives, with no second LIST), and a resourceVersion the API server no longer has (410 Gone, as
 * after a long disconnect) is answered by a relist. The connection is cut by a loopback TCP relay
 * between the reflector and the API server, which the test can sever; the 410 by compacting etcd, as the
 * API server itself does every 5 minutes (watches running are not disturbed; one resuming from before it relists).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import net, { type AddressInfo } from 'node:net';
import type { CoreV1Event, KubernetesListObject, V1ConfigMap } from '@kubernetes/client-node';
import { silentLogger } from '../../src/common/logger.js';
import { managedInformer } from '../../src/core/informer.js';
import { staticAccess } from '../../src/core/kube/access.js';
import { parseKubeConfig } from '../../src/core/kube/config.js';
import type { Reflector } from '../../src/core/kube/reflector.js';
import { makeKubeClients } from '../../src/core/kube-client.js';
import { freshNamespace, testCluster, waitFor } from '../support/cluster.js';

/** A TCP relay to the API server; cut() severs every connection and refuses new ones for a while. */
async function relay(target: URL): Promise<{ url: string; cut(refuseMs: number): void; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  let refuseUntil = 0;
  const server = net.createServer((client) => {
    if (Date.now() < refuseUntil) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut(refuseMs) {
      refuseUntil = Date.now() + refuseMs;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function adminCredentials() {
  const path = testCluster().kubeconfig;
  const parsed = parseKubeConfig(readFileSync(path, 'utf8'), path);
  assert.equal(parsed.kind, 'simple', 'the dev cluster kubeconfig is read without client-node');
  if (parsed.kind !== 'simple') throw new Error('unreachable');
  return parsed.credentials;
}

test(
  'a cut watch resumes from its last resourceVersion: what changed meanwhile arrives, without a relist',
  { timeout: 120_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'informer-cut');
    const creds = adminCredentials();
    const admin = makeKubeClients(staticAccess(creds), { qps: 50, burst: 50 });
    const cms = `/api/v1/namespaces/${ns}/configmaps`;
    await admin.json('POST', cms, { body: { metadata: { name: 'before' }, data: { v: '1' } } });

    const r = await relay(new URL(creds.server));
    t.after(() => r.close());
    const access = staticAccess({ ...creds, server: r.url });
    t.after(() => access.close());
    const clients = makeKubeClients(access, { qps: 50, burst: 50 });
    const informer = managedInformer<V1ConfigMap>(
      access,
      cms,
      () => clients.core.listNamespacedConfigMap({ namespace: ns }),
      {
        log: silentLogger(),
        what: 'configmaps',
      },
    );
    const added: string[] = [];
    const updated: string[] = [];
    informer.cache.on('add', (c) => added.push(c.metadata?.name ?? ''));
    informer.cache.on('update', (c) => updated.push(`${c.metadata?.name}=${c.data?.v}`));
    t.after(() => informer.stop());
    await informer.start();
    assert.equal(informer.cache.get('before', ns)?.data?.v, '1');
    const reflector = informer.cache as Reflector<V1ConfigMap>;

    // A change seen live, so the watch is known to run before it is cut.
    await admin.json('PATCH', `${cms}/before`, {
      body: { data: { v: '2' } },
      contentType: 'application/merge-patch+json',
    });
    await waitFor('the live update', () => updated.includes('before=2'));

    r.cut(1500);
    await admin.json('POST', cms, { body: { metadata: { name: 'during-cut' }, data: { v: '1' } } });
    await admin.json('PATCH', `${cms}/before`, {
      body: { data: { v: '3' } },
      contentType: 'application/merge-patch+json',
    });
    await waitFor(
      'the changes made while the watch was cut',
      () => added.includes('during-cut') && updated.includes('before=3'),
    );
    assert.equal(informer.cache.get('during-cut', ns)?.data?.v, '1');
    assert.equal(reflector.stats.lists, 1, 'resumed from the resourceVersion, not relisted');
    assert.ok(reflector.stats.resumes >= 1, `resumed (${reflector.stats.resumes} watches after the first)`);
  },
);

/**
 * etcd's own compaction up to `revision` (what the API server does every 5 minutes on its own), through
 * etcd's JSON gateway on loopback; its address is the API server's --etcd-servers flag, in its log.
 */
async function compactEtcd(revision: string): Promise<void> {
  const log = readFileSync(join(testCluster().runDir, 'logs', 'kube-apiserver.log'), 'utf8');
  const etcd = /--etcd-servers="\[(http:\/\/127\.0\.0\.1:\d+)/.exec(log)?.[1];
  assert.ok(etcd, 'the API server log names its etcd');
  const res = await fetch(`${etcd}/v3/kv/compaction`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ revision, physical: true }),
  });
  const text = await res.text();
  // Compacted already past it (the API server's own compaction): as good.
  assert.ok(res.ok || /compacted/.test(text), `etcd compaction: ${res.status} ${text}`);
}

test(
  'a resourceVersion the API server no longer has (410 Gone, after etcd compaction) is answered by a relist',
  { timeout: 120_000 },
  async (t) => {
    const ns = await freshNamespace(t, 'informer-gone');
    const creds = adminCredentials();
    const access = staticAccess(creds);
    t.after(() => access.close());
    const clients = makeKubeClients(access, { qps: 50, burst: 50 });
    // Events: the API server keeps no watch cache for them (its default --watch-cache-sizes), so a
    // watch is served by etcd, and a version etcd compacted away is gone for good.
    const events = `/api/v1/namespaces/${ns}/events`;
    const event = (name: string) => ({
      metadata: { name },
      involvedObject: { kind: 'Pod', apiVersion: 'v1', namespace: ns, name: 'p' },
      reason: 'Test',
      message: name,
      type: 'Normal',
    });
    const first = (await clients.json('POST', events, { body: event('a') })) as CoreV1Event;
    const stale = first.metadata?.resourceVersion ?? '';
    const later = (await clients.json('POST', events, { body: event('c') })) as CoreV1Event;
    await compactEtcd(later.metadata?.resourceVersion ?? '');
    let lists = 0;
    const informer = managedInformer<CoreV1Event>(
      access,
      events,
      async () => {
        const l = (await clients.json('GET', events)) as KubernetesListObject<CoreV1Event>;
        // The first list is answered as if from before the compaction (as after a long disconnect):
        // the watch from its version must get the API server's own 410.
        if (lists++ === 0) l.metadata = { ...l.metadata, resourceVersion: stale };
        return l;
      },
      { log: silentLogger(), what: 'events' },
    );
    const added: string[] = [];
    informer.cache.on('add', (c) => added.push(c.metadata?.name ?? ''));
    t.after(() => informer.stop());
    await informer.start();
    const reflector = informer.cache as Reflector<CoreV1Event>;
    await waitFor('the relist after 410 Gone', () => reflector.stats.relists >= 1, { timeoutMs: 30_000 });
    await clients.json('POST', events, { body: event('b') });
    await waitFor('an object created after the relist', () => added.includes('b'));
    assert.equal(lists, 2, 'one relist');
    assert.deepEqual(added.sort(), ['a', 'b', 'c']);
  },
);
