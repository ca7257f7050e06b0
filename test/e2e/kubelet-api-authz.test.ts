/**
 * The kubelet port authorizes like a kubelet's, against the real control plane:
 * every caller is authenticated (client certificate or bearer token through a
 * TokenReview) and authorized (a SubjectAccessReview on nodes/<subresource>);
 * the listeners speak only TLS 1.2/1.3 with AEAD ECDHE suites; a secured
 * operations endpoint guards /metrics and leaves the probes open.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type ConnectionOptions, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import type { V1Pod } from '@kubernetes/client-node';
import { freshNamespace, testCluster, waitFor } from '../support/cluster.js';
import { boundPod, core, startConnector, type ConnectorHandle } from './connector-process.js';
import {
  call,
  clusterCa,
  clusterIssuedCertificate,
  serviceAccountToken,
  spdyUpgrade,
  waitUntilAllowed,
  wsExec,
  type Credentials,
} from './kubelet-api-callers.js';
import { kubectl } from './kubelet-api-support.js';

async function kubeletPort(h: ConnectorHandle): Promise<number> {
  return waitFor('the node to advertise its kubelet port', async () => {
    const node = await core().readNode({ name: h.nodeName });
    const port = node.status?.daemonEndpoints?.kubeletEndpoint?.Port;
    return port && port > 0 ? port : undefined;
  });
}

async function runningPod(h: ConnectorHandle, ns: string, name: string): Promise<void> {
  const pod: V1Pod = boundPod(h.nodeName, name, {
    spec: {
      containers: [{ name: 'main', image: 'registry.example/victim:1', env: [{ name: 'PASSWORD', value: 'hunter2' }] }],
    },
  });
  await core().createNamespacedPod({ namespace: ns, body: pod });
  await waitFor(
    `pod ${ns}/${name} Running`,
    async () => (await core().readNamespacedPod({ name, namespace: ns })).status?.phase === 'Running',
  );
}

const nodeAttrs = (node: string, verb: string, subresource: string) => ({
  verb,
  resource: 'nodes',
  subresource,
  name: node,
  version: 'v1',
  group: '',
});

test('kubelet API: 401 without credentials, 403 without rights, allowed with nodes/proxy, as a kubelet', async (t) => {
  const ns = await freshNamespace(t, 'kubelet-authz');
  const h = await startConnector(t, { extraArgs: ['--metrics-require-auth'] });
  await runningPod(h, ns, 'victim');
  const port = await kubeletPort(h);
  const logs = `/containerLogs/${ns}/victim/main`;
  const exec = `/exec/${ns}/victim/main?command=env&output=1&error=1`;

  await t.test('no credentials: 401 on every path, before anything is routed', async () => {
    for (const path of [logs, '/pods', '/healthz', '/stats/summary', `/containerLogs/${ns}/nosuchpod/main`]) {
      const r = await call(port, path, null);
      assert.equal(r.status, 401, `${path}: ${r.body}`);
      assert.doesNotMatch(r.body, /victim|nosuchpod/);
    }
    assert.equal((await spdyUpgrade(port, exec, null)).status, 401);
    const ws = await wsExec(port, exec, null);
    assert.ok('refused' in ws && ws.refused === 401, JSON.stringify(ws));
    // a token the API server does not know is no better
    assert.equal((await call(port, '/pods', { token: 'not-a-real-token' })).status, 401);
  });

  await t.test(
    'a certificate the cluster issued to a user without rights (CN=nobody-user): 403 on logs, exec and /pods',
    async () => {
      const nobody = await clusterIssuedCertificate(t, 'nobody-user');
      // The API server authenticates it, and grants it nothing.
      const api = new URL(testCluster().server);
      const own = await call(Number(api.port), '/api/v1/namespaces/default/pods', nobody);
      assert.equal(own.status, 403, own.body);
      assert.match(own.body, /User \\?"nobody-user\\?"/);

      const l = await call(port, logs, nobody);
      assert.equal(l.status, 403, l.body);
      assert.equal(l.body.trim(), 'Forbidden (user=nobody-user, verb=get, resource=nodes, subresource(s)=[proxy])');
      const pods = await call(port, '/pods', nobody);
      assert.equal(pods.status, 403, pods.body);
      assert.equal(
        pods.body.trim(),
        'Forbidden (user=nobody-user, verb=get, resource=nodes, subresource(s)=[pods proxy])',
      );
      assert.doesNotMatch(pods.body, /hunter2|victim/);
      const spdy = await spdyUpgrade(port, exec, nobody);
      assert.equal(spdy.status, 403, spdy.body);
      // The WebSocket exec of the review (a GET) is authorized as create, and refused before any upgrade.
      const ws = await wsExec(port, exec, nobody);
      assert.ok('refused' in ws, JSON.stringify(ws));
      assert.equal(ws.refused, 403);
      assert.match(ws.body, /user=nobody-user, verb=create, resource=nodes, subresource\(s\)=\[proxy\]/);
      assert.equal((await call(port, '/stats/summary', nobody)).status, 403);
    },
  );

  await t.test(
    'a ServiceAccount token bound to nodes/proxy get+create: pods, logs and a WebSocket exec work',
    async () => {
      const rules = [{ apiGroups: [''], resources: ['nodes/proxy'], verbs: ['get', 'create'] }];
      const sa = await serviceAccountToken(t, ns, 'node-debugger', rules);
      const groups = ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'];
      await waitUntilAllowed(sa.username, groups, nodeAttrs(h.nodeName, 'create', 'proxy'));
      const who: Credentials = { token: sa.token };

      const pods = await call(port, '/pods', who);
      assert.equal(pods.status, 200, pods.body);
      const list = JSON.parse(pods.body) as { items: V1Pod[] };
      assert.ok(list.items.some((p) => p.metadata?.name === 'victim' && p.metadata.namespace === ns));
      const l = await call(port, logs, who);
      assert.equal(l.status, 200, l.body);
      assert.match(l.body, /^started registry\.example\/victim:1\n/);
      const ws = await wsExec(port, exec, who);
      assert.ok('stdout' in ws, JSON.stringify(ws));
      assert.match(ws.stdout, /PASSWORD=hunter2/);
      assert.match(ws.status, /"status":"Success"/);
      // the token may also ride in the WebSocket sub-protocol, as browsers must send it
      const viaProtocol = await wsExec(port, `/exec/${ns}/victim/main?command=echo&command=hi&output=1`, who, {
        tokenInProtocol: true,
      });
      assert.ok('stdout' in viaProtocol, JSON.stringify(viaProtocol));
      assert.equal(viaProtocol.stdout, 'hi\n');
      // /stats needs nodes/stats, which this role lacks
      assert.equal((await call(port, '/stats/summary', who)).status, 403);
      // the connector logs who ran the session
      assert.match(h.output(), new RegExp(`"user":"${sa.username}"[^\\n]*"msg":"streaming session started"`));
    },
  );

  await t.test(
    'a token whose ServiceAccount has no nodes rights: 403; one with only get may read but not exec',
    async () => {
      const plain = await serviceAccountToken(t, ns, 'no-rights');
      for (const path of ['/pods', logs]) {
        const r = await call(port, path, { token: plain.token });
        assert.equal(r.status, 403, `${path}: ${r.body}`);
        assert.match(r.body, new RegExp(`^Forbidden \\(user=${plain.username}, `));
      }
      const ws = await wsExec(port, exec, { token: plain.token });
      assert.ok('refused' in ws && ws.refused === 403, JSON.stringify(ws));

      const viewer = await serviceAccountToken(t, ns, 'viewer', [
        { apiGroups: [''], resources: ['nodes/proxy'], verbs: ['get'] },
      ]);
      const groups = ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'];
      await waitUntilAllowed(viewer.username, groups, nodeAttrs(h.nodeName, 'get', 'proxy'));
      assert.equal((await call(port, logs, { token: viewer.token })).status, 200);
      const denied = await wsExec(port, exec, { token: viewer.token });
      assert.ok('refused' in denied && denied.refused === 403, JSON.stringify(denied));
    },
  );

  await t.test(
    'the API server’s own kubelet client (bound to system:kubelet-api-admin): kubectl logs and exec pass',
    async () => {
      const l = await kubectl(['-n', ns, 'logs', 'victim']);
      assert.equal(l.code, 0, l.stderr);
      assert.match(l.stdout, /^started registry\.example\/victim:1\n/);
      const e = await kubectl(['-n', ns, 'exec', 'victim', '--', 'echo', 'through', 'the', 'api', 'server']);
      assert.equal(e.code, 0, e.stderr);
      assert.equal(e.stdout, 'through the api server\n');
      assert.match(h.output(), /"user":"kube-apiserver-kubelet-client"[^\n]*"msg":"streaming session started"/);
    },
  );

  await t.test('the secured operations endpoint: probes open, /metrics only for nodes/metrics', async () => {
    const ops = h.metricsPort();
    assert.ok(ops, 'the operations endpoint logged its port');
    assert.equal((await call(ops, '/healthz', null)).status, 200);
    assert.equal((await call(ops, '/readyz', null)).status, 200);
    assert.equal((await call(ops, '/metrics', null)).status, 401);
    const proxyOnly = await serviceAccountToken(t, ns, 'not-a-scraper');
    assert.equal((await call(ops, '/metrics', { token: proxyOnly.token })).status, 403);
    const scraper = await serviceAccountToken(t, ns, 'scraper', [
      { apiGroups: [''], resources: ['nodes/metrics'], verbs: ['get'] },
    ]);
    const groups = ['system:serviceaccounts', `system:serviceaccounts:${ns}`, 'system:authenticated'];
    await waitUntilAllowed(scraper.username, groups, nodeAttrs(h.nodeName, 'get', 'metrics'));
    const m = await call(ops, '/metrics', { token: scraper.token });
    assert.equal(m.status, 200, m.body);
    assert.match(m.body, /^# HELP /m);
  });
});

// ---- TLS -----------------------------------------------------------------------------

type Outcome = { ok: true; protocol: string; cipher: string } | { ok: false; code: string };

function handshake(port: number, opts: ConnectionOptions): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, ca: clusterCa(), ...opts }, () => {
      resolve({ ok: true, protocol: socket.getProtocol() ?? '', cipher: socket.getCipher().name });
      socket.destroy();
    });
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ ok: false, code: err.code ?? err.message }));
  });
}

/** Client offers that a hardened listener must refuse, and a permissive one accepts (so the client really offers them). */
const WEAK: Array<[string, ConnectionOptions]> = [
  ['TLS 1.1', { minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'ALL@SECLEVEL=0' }],
  ['TLS 1.0', { minVersion: 'TLSv1', maxVersion: 'TLSv1', ciphers: 'ALL@SECLEVEL=0' }],
  ['TLS 1.2 ECDHE-ECDSA-AES128-SHA256 (CBC)', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256' }],
  ['TLS 1.2 ECDHE-ECDSA-AES256-SHA384 (CBC)', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-SHA384' }],
  ['TLS 1.2 ECDHE-ECDSA-AES128-SHA (CBC, SHA-1)', { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA' }],
];

const STRONG: Array<[string, ConnectionOptions, string]> = [
  ['TLS 1.3', { minVersion: 'TLSv1.3' }, 'TLSv1.3'],
  [
    'TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256',
    { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' },
    'TLSv1.2',
  ],
  [
    'TLS 1.2 ECDHE-ECDSA-AES256-GCM-SHA384',
    { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' },
    'TLSv1.2',
  ],
  [
    'TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305',
    { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' },
    'TLSv1.2',
  ],
];

test('kubelet port and secured operations endpoint: TLS 1.2 and 1.3 only, AEAD ECDHE suites only', async (t) => {
  const h = await startConnector(t, { extraArgs: ['--metrics-require-auth'] });
  const kubelet = await kubeletPort(h);
  const ops = h.metricsPort();
  assert.ok(ops);

  // The control: a listener with the same certificate and Node's permissive settings accepts every weak offer.
  const c = testCluster();
  const permissive = createServer(
    {
      cert: readFileSync(c.kubeletServingCert),
      key: readFileSync(c.kubeletServingKey),
      minVersion: 'TLSv1',
      ciphers: 'ALL@SECLEVEL=0',
    },
    (s) => s.end(),
  );
  permissive.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => permissive.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise<void>((r) => permissive.close(() => r())));
  const control = (permissive.address() as AddressInfo).port;

  for (const [what, opts] of WEAK) {
    const accepted = await handshake(control, opts);
    assert.ok(accepted.ok, `control listener refused ${what}: ${JSON.stringify(accepted)}`);
    for (const [name, port] of [
      ['kubelet port', kubelet],
      ['operations endpoint', ops],
    ] as const) {
      const r = await handshake(port, opts);
      assert.equal(r.ok, false, `${name} accepted ${what}: ${JSON.stringify(r)}`);
      // refused by the server (an alert), not by our own client
      assert.match(!r.ok ? r.code : '', /ALERT_PROTOCOL_VERSION|ALERT_HANDSHAKE_FAILURE/, `${name}, ${what}`);
    }
  }
  for (const [what, opts, protocol] of STRONG) {
    for (const [name, port] of [
      ['kubelet port', kubelet],
      ['operations endpoint', ops],
    ] as const) {
      const r = await handshake(port, opts);
      assert.ok(r.ok, `${name} refused ${what}: ${JSON.stringify(r)}`);
      assert.equal(r.protocol, protocol);
      if (opts.ciphers) assert.equal(r.cipher, opts.ciphers);
    }
  }
});
