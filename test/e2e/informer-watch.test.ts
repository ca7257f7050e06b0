/**
 * The connector's hand-written reflector (src/core/kube/reflector.ts) against the real API server:
 * a watch whose connection is cut is resumed from the last resourceVersion (what changed meanwhile
 * arrives, with no second LIST). The connection is cut by a loopback TCP relay between the reflector
 * and the API server, which the test can sever. The 410 relist is proven by test/unit/core-reflector
 * (a version the API server still serves from its watch cache or etcd could not be made stale here).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import type { V1ConfigMap } from '@kubernetes/client-node';
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
