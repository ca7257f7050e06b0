import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import { selfSignedPair } from '../../src/common/pki.js';
import { KubeApiError, makeKubeClients } from '../../src/core/kube-client.js';

interface Seen {
  method: string;
  url: string;
  auth: string | undefined;
  contentType: string | undefined;
  body: string;
}

async function fakeApiServer(): Promise<{ server: Server; url: string; ca: string; seen: Seen[] }> {
  const pair = await selfSignedPair({ commonName: '127.0.0.1', hosts: ['127.0.0.1'], server: true });
  const seen: Seen[] = [];
  const server = createServer({ cert: pair.cert, key: pair.key }, (req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        auth: req.headers.authorization,
        contentType: req.headers['content-type'],
        body,
      });
      res.setHeader('Content-Type', 'application/json');
      if (req.url?.includes('/pods/gone')) {
        res.statusCode = 404;
        res.end(JSON.stringify({ kind: 'Status', code: 404, message: 'pods "gone" not found' }));
      } else if (req.url === '/api/v1/namespaces/kube-system') {
        res.end(JSON.stringify({ kind: 'Namespace', apiVersion: 'v1', metadata: { name: 'kube-system', uid: 'u-1' } }));
      } else {
        res.end(JSON.stringify({ kind: 'Pod', metadata: { name: 'p', resourceVersion: '42' } }));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { server, url: `https://127.0.0.1:${port}`, ca: pair.cert, seen };
}

function kubeConfig(url: string, ca: string, token: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: url, caData: Buffer.from(ca).toString('base64') }],
    users: [{ name: 'u', token }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

test('json(): one request with the body and content type given, the parsed answer back, KubeApiError (code) on errors', async () => {
  const api = await fakeApiServer();
  try {
    const clients = makeKubeClients(kubeConfig(api.url, api.ca, 'tok-a'), { qps: 100, burst: 100 });
    const out = (await clients.json('PATCH', '/api/v1/namespaces/ns/pods/p/status', {
      body: { status: { phase: 'Running' } },
      contentType: 'application/strategic-merge-patch+json',
    })) as { metadata: { resourceVersion: string } };
    assert.equal(out.metadata.resourceVersion, '42');
    assert.deepEqual(api.seen[0], {
      method: 'PATCH',
      url: '/api/v1/namespaces/ns/pods/p/status',
      auth: 'Bearer tok-a',
      contentType: 'application/strategic-merge-patch+json',
      body: '{"status":{"phase":"Running"}}',
    });
    await assert.rejects(
      clients.json('DELETE', '/api/v1/namespaces/ns/pods/gone', { query: { gracePeriodSeconds: '0' } }),
      (e: unknown) => e instanceof KubeApiError && e.code === 404,
    );
    assert.equal(api.seen[1]?.url, '/api/v1/namespaces/ns/pods/gone?gracePeriodSeconds=0');
    // The typed clients go through the same HTTP library.
    const ns = await clients.core.readNamespace({ name: 'kube-system' });
    assert.equal(ns.metadata?.uid, 'u-1');
  } finally {
    api.server.closeAllConnections();
    api.server.close();
  }
});

test('credentials are reused between requests, but a replaced user (certificate rotation) is used at once', async () => {
  const api = await fakeApiServer();
  try {
    const kc = kubeConfig(api.url, api.ca, 'tok-a');
    const clients = makeKubeClients(kc, { qps: 100, burst: 100 });
    await clients.json('GET', '/api/v1/namespaces/ns/pods/p');
    await clients.json('GET', '/api/v1/namespaces/ns/pods/p');
    kc.loadFromOptions({
      clusters: kc.clusters,
      users: [{ name: 'u', token: 'tok-b' }],
      contexts: kc.contexts,
      currentContext: 'x',
    });
    await clients.json('GET', '/api/v1/namespaces/ns/pods/p');
    assert.deepEqual(
      api.seen.map((s) => s.auth),
      ['Bearer tok-a', 'Bearer tok-a', 'Bearer tok-b'],
    );
  } finally {
    api.server.closeAllConnections();
    api.server.close();
  }
});
